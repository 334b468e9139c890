"""Gist simulator.

DOCUMENTED (shared/ref/apps/NOTES.md), served as published: base path root; ``Authorization: Bearer
<token>``; ``GET /contacts?order=desc&order_by=created_at|updated_at&page=1&per_page=N`` (per_page at
most 50); lookup ``GET /contacts?email=`` or ``?user_id=`` (one contact); ``GET|DELETE /contacts/{id}``;
``POST /contacts`` creates or updates and needs an email or a user_id; bodies wrapped as
``{"contact": {...}}``; contact ``id`` (int), ``type`` (user|lead), ``name``, ``email``, ``user_id``,
``phone``, ``created_at``, ``updated_at``, ``last_seen_at`` (Unix seconds), ``tags[{id, name}]``,
``custom_properties{}``; errors ``{"errors": [{"code", "message"}]}`` (``not_found``); tags are a
resource of their own (read_tags/write_tags scopes).

ASSUMPTIONS (not published):
- list answers ``{"contacts": [...], "pages": {"next": <absolute URL of the next page> | null, "page",
  "per_page", "total_pages"}}``; default ``order_by=created_at&order=desc``, per_page 50; a lookup
  that matches nobody is a 404; per_page over 50 is a 400 (not clamped);
- contacts have NO updated-since filter (Gist documents none): a client sorts
  ``order_by=updated_at&order=desc`` and stops paging once it passes its watermark;
- ``POST /contacts`` matches an existing contact by ``id`` (unknown id: 404), else ``user_id``, else
  ``email`` (case-insensitive); answers ``{"contact"}`` with 200 on update, 201 on create; a write body
  may also be flat; ``type`` defaults to user when there is a user_id, else lead; DELETE answers 204;
- ``POST /tags`` ``{"tag": {"name"}, "contacts": [{"id"} | {"email"}, ... (``"untag": true`` removes)]}``
  tags (or untags) those contacts, bumps their ``updated_at`` and answers ``{"tag": {"id", "name"}}``
  (tag ids are ints, kept in collection ``tags``); a contact that does not exist is a 404, nothing tagged;
- ``GET /tasks`` and ``GET /notes`` (collections ``tasks``, ``notes``): same paging and ordering plus
  ``updated_since`` (Unix seconds, ``>=``); ``POST /tasks`` / ``POST /notes`` create (201),
  ``GET|PUT /tasks/{id}``, ``GET|PUT /notes/{id}`` (partial); answers ``{"task"}`` / ``{"note"}``;
  task: contact_id, title (required), status ``open|completed``, due_at (Unix seconds or null);
  note: contact_id, body (required); ``contact_id`` must name a contact, else 422.
- webhooks (harness/simulators/app_push.py) on every change, tagging included: ``{"id": "whk_<hex>",
  "topic": "<contact|task|note>.<created|updated|deleted>", "created_at": unix seconds, "data": record}``,
  signed ``X-Gist-Signature: sha256=<hex HMAC-SHA256 of the body>``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from harness.simulators.app_push import Change, Push, Signing
from harness.simulators.base import SimState, utcnow
from harness.simulators.rest_api import (
    UNIX,
    Api,
    Field,
    HardDelete,
    HeaderAuth,
    Ids,
    Listing,
    Order,
    Parent,
    Resource,
    secret_is,
    since,
)
from harness.simulators.rest_app import RestSim
from harness.simulators.rest_paging import NextLink

MAX_PER_PAGE = 50


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message}]}


def _order(query: Mapping[str, str]) -> Order:
    order_by, order = query.get("order_by") or "created_at", query.get("order") or "desc"
    if order_by not in ("created_at", "updated_at") or order not in ("asc", "desc"):
        raise ValueError("order_by must be created_at or updated_at, and order asc or desc")
    return Order(order_by, descending=order == "desc")


def _resource(collection: str, fields: tuple[Field, ...], listing: Listing, **more: Any) -> Resource:
    noun = collection.removesuffix("s")
    return Resource(collection=collection, path=f"/{collection}", item_path=f"/{collection}/{{{noun}_id}}",
                    fields=fields, ids=Ids("int"), paging=NextLink(MAX_PER_PAGE, MAX_PER_PAGE), clock=UNIX,
                    list_key=collection, item_key=noun, body_key=noun, body_key_optional=True, lists=(listing,),
                    **more)


def _contact_type(contact: dict[str, Any]) -> None:
    contact["type"] = contact.get("type") or ("user" if contact.get("user_id") else "lead")


def _identified(contact: dict[str, Any]) -> str | None:
    return None if contact.get("email") or contact.get("user_id") else "a contact needs an email or a user_id"


CONTACTS = _resource(
    "contacts",
    (Field("type", choices=("user", "lead")), Field("name"), Field("email", "email"), Field("user_id"),
     Field("phone"), Field("last_seen_at", time=UNIX), Field("custom_properties", "dict")),
    Listing(lookup=("email", "user_id"), lookup_one=True, order=_order),
    update=None, upsert_by=("id", "user_id", "email"), delete=HardDelete(),
    defaults={"type": None, "name": None, "email": None, "user_id": None, "phone": None, "last_seen_at": None,
              "tags": [], "custom_properties": {}},
    finish=_contact_type, check=_identified)
UPDATED_SINCE = Listing(filters=(since("updated_since", UNIX),), order=_order)
TASKS = _resource(
    "tasks",
    (Field("title", required=True), Field("status", choices=("open", "completed")), Field("due_at", time=UNIX)),
    UPDATED_SINCE, update="PUT", parent=Parent("contact_id", "contacts"), defaults={"status": "open", "due_at": None})
NOTES = _resource("notes", (Field("body", required=True),), UPDATED_SINCE, update="PUT",
                  parent=Parent("contact_id", "contacts"))


def _event(change: Change) -> tuple[dict[str, Any], str]:
    event_id = f"whk_{uuid.uuid4().hex}"
    return {"id": event_id, "topic": change.type, "created_at": int(time.time()), "data": change.record}, event_id


PUSH = Push(Signing("X-Gist-Signature", "hex", prefix="sha256="), {"contacts": "contact", "tasks": "task",
                                                                   "notes": "note"}, _event)


def create_app(token: str, state: SimState | None = None) -> FastAPI:
    auth = HeaderAuth("Authorization", secret_is(token), scheme="Bearer")
    sim = RestSim(Api("Gist", auth, _error, (CONTACTS, TASKS, NOTES)), state, push=PUSH)
    app = sim.build()

    @app.post("/tags")
    async def tag_contacts(request: Request):
        if (refused := sim.guard(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return sim.fail(400, "bad_request", "the body must be JSON")
        name = (body.get("tag") or {}).get("name") if isinstance(body, dict) else None
        targets = body.get("contacts") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name.strip() or not isinstance(targets, list):
            return sim.fail(422, "validation_error", 'the body must be {"tag": {"name"}, "contacts": [...]}')
        with sim.state.lock:
            contacts = sim.state.table("contacts")
            found = []
            for target in targets:
                contact = _find_contact(contacts, target)
                if contact is None:
                    return sim.fail(404, "not_found", f"contact {target} not found")
                found.append((contact, isinstance(target, dict) and target.get("untag") is True))
            tag = _tag_named(sim.state, name.strip())
            now = UNIX.render(utcnow())
            for contact, untag in found:
                others = [t for t in contact.get("tags") or [] if t.get("id") != tag["id"]]
                contact = {**contact, "tags": others if untag else [*others, tag], "updated_at": now}
                contacts[str(contact["id"])] = contact
                sim.changed("updated", CONTACTS, contact)
        return JSONResponse({"tag": tag})

    return app


def _find_contact(contacts: Mapping[str, dict[str, Any]], target: Any) -> dict[str, Any] | None:
    if not isinstance(target, dict):
        return None
    if target.get("id") is not None:
        return contacts.get(str(target["id"]))
    email = str(target.get("email") or "").lower()
    return next((c for c in contacts.values() if email and str(c.get("email") or "").lower() == email), None)


def _tag_named(state: SimState, name: str) -> dict[str, Any]:
    """The tag of this name, made on first use (call under the lock)."""
    tags = state.table("tags")
    if existing := next((t for t in tags.values() if t.get("name") == name), None):
        return {"id": existing["id"], "name": existing["name"]}
    tag = {"id": max((int(t["id"]) for t in tags.values()), default=0) + 1, "name": name}
    tags[str(tag["id"])] = tag
    return dict(tag)

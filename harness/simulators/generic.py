"""Simulator of the "APPNAME" template app (guide 002): the app a user copies to add their own.

It stands for no real product, so ALL of it is an ASSUMPTION, picked to exercise what the other
simulators do not: OAuth 2 client credentials with rotating refresh tokens, offset paging, an id
field not called ``id``, camelCase fields.

- ``POST /oauth/token``, form-encoded (client credentials in the form or HTTP Basic):
  ``grant_type=client_credentials`` -> ``{"access_token", "token_type": "Bearer", "expires_in",
  "refresh_token"}``; ``grant_type=refresh_token&refresh_token=...`` -> a new pair, and the old
  refresh token is revoked (rotation); bad client 401 ``{"error": "invalid_client"}``, bad refresh
  token 400 ``{"error": "invalid_grant"}``. Access tokens live ``access_token_ttl_s``; the admin
  fault ``{"expire_tokens": true}`` expires them all.
- API calls: ``Authorization: Bearer <access token>``, else 401 ``{"error": "invalid_token"}``;
  errors ``{"error": <code>, "error_description": <message>}`` (422 ``validation_error``).
- base ``/api``; lists ``GET /api/<res>?offset=0&limit=100&updatedSince=<ISO>`` (limit 1..100,
  ``updatedSince`` is ``>=``, no "before") answer ``{"data": [...], "total": N}`` ordered by
  ``lastUpdated`` then id; contacts also take ``?email=``; ``POST`` (201), ``GET|PUT|DELETE
  /api/<res>/{id}`` (PUT partial; DELETE removes a contact: 204, and archives a task or note:
  ``archived: true``, ``lastUpdated`` bumped, still listed, answered 200); bodies bare objects;
  timestamps ISO ``Z``.
- contacts (``contactId`` ``c-<n>``): email, name, phone, source (the lead source), tags (strings),
  segment (free text: the profile's routing rules set it), lastUpdated; tasks (``taskId`` ``t-<n>``):
  contactId, title (required), status ``open|done``, dueDate (ISO or null), lastUpdated; notes
  (``noteId`` ``n-<n>``): contactId, content (required), timestamp (ISO; defaults to the write time),
  lastUpdated. ``contactId`` must name a contact, else 422.
- webhooks (harness/simulators/app_push.py) on every change: ``{"eventId": uuid, "eventType":
  "<contact|task|note>.<created|updated|deleted>", "entity", "recordId", "record"}``, signed
  ``X-Signature: sha256=<hex HMAC-SHA256 of "<X-Timestamp>.<body>">``, the timestamp in unix seconds.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request

from harness.simulators.app_push import Change, Push, Signing
from harness.simulators.base import SimState, error
from harness.simulators.rest_api import (
    ISO,
    Api,
    Field,
    HardDelete,
    HeaderAuth,
    Ids,
    Listing,
    Parent,
    Resource,
    SoftDelete,
    since,
)
from harness.simulators.rest_app import RestSim
from harness.simulators.rest_paging import OffsetTotal

DEFAULT_ACCESS_TOKEN_TTL_S = 3600
LISTING = Listing(filters=(since("updatedSince", ISO),))
ARCHIVE = SoftDelete({"archived": True})


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": "invalid_token" if code == "unauthorized" else code, "error_description": message}


def _resource(collection: str, id_field: str, prefix: str, fields: tuple[Field, ...], **more: Any) -> Resource:
    path = f"/api/{collection}"
    return Resource(collection=collection, path=path, item_path=f"{path}/{{{id_field}}}", fields=fields,
                    ids=Ids("prefix", prefix), paging=OffsetTotal(100, 100), id_field=id_field,
                    updated="lastUpdated", created=None, list_key="data", update="PUT", **{"delete": HardDelete(), **more})


def _written_now(note: dict[str, Any]) -> None:
    note["timestamp"] = note.get("timestamp") or note["lastUpdated"]


CONTACTS = _resource("contacts", "contactId", "c-", (Field("email", "email"), Field("name"), Field("phone"),
                                                    Field("source"), Field("tags", "strings"), Field("segment")),
                     lists=(Listing(filters=LISTING.filters, lookup=("email",)),))
TASKS = _resource("tasks", "taskId", "t-", (Field("title", required=True), Field("status", choices=("open", "done")),
                                            Field("dueDate", time=ISO)),
                  lists=(LISTING,), parent=Parent("contactId", "contacts"),
                  defaults={"status": "open", "dueDate": None, "archived": False}, delete=ARCHIVE)
NOTES = _resource("notes", "noteId", "n-", (Field("content", required=True), Field("timestamp", time=ISO)),
                  lists=(LISTING,), parent=Parent("contactId", "contacts"), finish=_written_now,
                  defaults={"archived": False}, delete=ARCHIVE)


def _event(change: Change) -> tuple[dict[str, Any], str]:
    event_id = str(uuid.uuid4())
    return {"eventId": event_id, "eventType": change.type, "entity": change.noun, "recordId": change.record_id,
            "record": change.record}, event_id


PUSH = Push(Signing("X-Signature", "hex", prefix="sha256=", timestamp_header="X-Timestamp",
                    signed_text="timestamp.body"),
            {"contacts": "contact", "tasks": "task", "notes": "note"}, _event)


class Tokens:
    """Access tokens with an expiry, and the refresh tokens not yet redeemed (each works once)."""

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self.access: dict[str, float] = {}
        self.refresh: set[str] = set()

    def issue(self) -> dict[str, Any]:
        access, refresh = f"at-{secrets.token_urlsafe(24)}", f"rt-{secrets.token_urlsafe(24)}"
        self.access[access] = time.monotonic() + self.ttl_s
        self.refresh.add(refresh)
        return {"access_token": access, "token_type": "Bearer", "expires_in": int(self.ttl_s),
                "refresh_token": refresh}

    def redeem(self, refresh: str) -> bool:
        if refresh not in self.refresh:
            return False
        self.refresh.discard(refresh)
        return True

    def valid(self, access: str) -> bool:
        return self.access.get(access, 0.0) > time.monotonic()

    def expire_all(self, _: Any = None) -> None:
        self.access = dict.fromkeys(self.access, 0.0)


def _client_of(request: Request, form: dict[str, str]) -> tuple[str, str]:
    """Client credentials from HTTP Basic, else from the form (RFC 6749 section 2.3.1 allows both)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
            return client_id, client_secret
        except ValueError:
            return "", ""
    return form.get("client_id", ""), form.get("client_secret", "")


def create_app(client_id: str, client_secret: str, state: SimState | None = None,
               access_token_ttl_s: float = DEFAULT_ACCESS_TOKEN_TTL_S) -> FastAPI:
    tokens = Tokens(access_token_ttl_s)
    auth = HeaderAuth("Authorization", tokens.valid, scheme="Bearer")
    sim = RestSim(Api("APPNAME (generic)", auth, _error, (CONTACTS, TASKS, NOTES)), state, push=PUSH)
    app = sim.build(fault_actions={"expire_tokens": tokens.expire_all})

    @app.post("/oauth/token")
    async def token(request: Request):
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
        given_id, given_secret = _client_of(request, form)
        if not (hmac.compare_digest(given_id.encode(), client_id.encode())
                and hmac.compare_digest(given_secret.encode(), client_secret.encode())):
            return error(401, {"error": "invalid_client", "error_description": "unknown client or wrong secret"})
        grant = form.get("grant_type")
        with sim.state.lock:
            if grant == "client_credentials":
                return tokens.issue()
            if grant == "refresh_token":
                if not tokens.redeem(form.get("refresh_token", "")):
                    return error(400, {"error": "invalid_grant", "error_description": "unknown or used refresh token"})
                return tokens.issue()
        return error(400, {"error": "unsupported_grant_type", "error_description": f"grant_type {grant!r}"})

    return app

"""Gymdesk simulator.

Gymdesk publishes no API documentation (see shared/ref/apps/NOTES.md), so ALL of this is an
ASSUMPTION: the conventional REST API that include/profiles/gymdesk.yaml describes, and nothing more.

- auth: header ``X-API-Key``; 401 ``{"error": {"code": "unauthorized", "message"}}``;
- errors ``{"error": {"code", "message"}}``; 422 (``validation_error``) for an invalid email, a company
  name over 100 characters, an unknown status, a task/note/booking whose ``member_id`` names no member;
- lists ``GET /v1/<res>?updated_since&updated_before&page&per_page`` (ISO 8601, ``>=`` and ``<``;
  per_page 1..100, default 50, else 400) answer ``{"data": [...], "meta": {"page", "per_page",
  "total", "has_more"}}`` ordered by ``updated_at`` then ``id``; members also take ``?email=``;
- ``POST /v1/<res>`` (201), ``GET|PATCH|DELETE /v1/<res>/{id}``, bodies ``{"data": record}`` both ways;
- resources: members (``mem_<n>``; DELETE archives: ``status: archived``, answers the member; ``segment``:
  the member segment a profile rule sets, free text),
  tasks (``tsk_<n>``; ``assignee`` holds the staff member's GHL user id) and notes (``note_<n>``) (DELETE removes: 204), bookings (``bk_<n>``; DELETE
  cancels: ``status: cancelled``, answers the booking). Timestamps ISO 8601 with ``Z``.
- webhooks (harness/simulators/app_push.py) on every change: ``{"id": "evt_<hex>", "type":
  "<member|task|note|booking>.<created|updated|deleted>", "created_at": ISO, "data": record}``, signed
  ``X-Gymdesk-Signature: <hex HMAC-SHA256 of "<X-Gymdesk-Timestamp>.<body>">``, the timestamp ISO 8601.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI

from harness.simulators.app_push import Change, Push, Signing
from harness.simulators.base import SimState, now_iso
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
    before,
    secret_is,
    since,
)
from harness.simulators.rest_app import RestSim
from harness.simulators.rest_paging import PageMeta

MAX_PER_PAGE = 100
MAX_COMPANY_LENGTH = 100  # an assumed field limit, so a write can be refused with a 422
FILTERS = (since("updated_since", ISO), before("updated_before", ISO))


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _resource(collection: str, param: str, prefix: str, fields: tuple[Field, ...], **more: Any) -> Resource:
    path = f"/v1/{collection}"
    return Resource(collection=collection, path=path, item_path=f"{path}/{{{param}}}", fields=fields,
                    ids=Ids("prefix", prefix, 50_000), paging=PageMeta(50, MAX_PER_PAGE), list_key="data",
                    item_key="data", body_key="data", update="PATCH", **more)


def _ends_after_start(booking: dict[str, Any]) -> str | None:
    starts, ends = booking.get("starts_at"), booking.get("ends_at")
    if starts and ends and ISO.read(ends) < ISO.read(starts):
        return "ends_at must not be before starts_at"
    return None


def _noted_when_written(note: dict[str, Any]) -> None:
    note["noted_at"] = note.get("noted_at") or note["created_at"]


MEMBERS = _resource(
    "members", "member_id", "mem_",
    (Field("first_name"), Field("last_name"), Field("email", "email"), Field("phone"),
     Field("company", max_length=MAX_COMPANY_LENGTH), Field("lead_source"),
     Field("status", choices=("active", "lead", "archived")), Field("segment")),
    lists=(Listing(filters=FILTERS, lookup=("email",)),), defaults={"status": "active"},
    delete=SoftDelete({"status": "archived"}))
TASKS = _resource(
    "tasks", "task_id", "tsk_",
    (Field("title", required=True), Field("description"), Field("due_at", time=ISO),
     Field("status", choices=("open", "done")), Field("assignee")),
    lists=(Listing(filters=FILTERS),), defaults={"status": "open"}, delete=HardDelete(),
    parent=Parent("member_id", "members"))
NOTES = _resource(
    "notes", "note_id", "note_",
    (Field("content", required=True), Field("noted_at", time=ISO)),
    lists=(Listing(filters=FILTERS),), delete=HardDelete(), parent=Parent("member_id", "members"),
    finish=_noted_when_written)
BOOKINGS = _resource(
    "bookings", "booking_id", "bk_",
    (Field("title"), Field("starts_at", time=ISO), Field("ends_at", time=ISO),
     Field("status", choices=("booked", "cancelled", "attended"))),
    lists=(Listing(filters=FILTERS),), defaults={"status": "booked"},
    delete=SoftDelete({"status": "cancelled"}), parent=Parent("member_id", "members"), check=_ends_after_start)


def _event(change: Change) -> tuple[dict[str, Any], str]:
    event_id = f"evt_{uuid.uuid4().hex}"
    return {"id": event_id, "type": change.type, "created_at": now_iso(), "data": change.record}, event_id


PUSH = Push(Signing("X-Gymdesk-Signature", "hex", timestamp_header="X-Gymdesk-Timestamp", timestamp="iso",
                    signed_text="timestamp.body"),
            {"members": "member", "tasks": "task", "notes": "note", "bookings": "booking"}, _event)


def create_app(api_key: str, state: SimState | None = None) -> FastAPI:
    api = Api("Gymdesk", HeaderAuth("X-API-Key", secret_is(api_key)), _error, (MEMBERS, TASKS, NOTES, BOOKINGS))
    return RestSim(api, state, push=PUSH).build()

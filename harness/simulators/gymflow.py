"""GymFlow simulator.

GymFlow publishes no API documentation (see shared/ref/apps/NOTES.md), so ALL of this is an
ASSUMPTION, chosen to differ from Gymdesk where real APIs commonly do (cursor paging, bare bodies,
soft deletes that stay listed):

- auth ``Authorization: Bearer <api key>``; errors ``{"error": "<message>", "details": [...]}``
  (``details`` lists the validation problems of a 422, else empty); at most 20 requests per second
  per key, else 429 with ``Retry-After: 1``;
- base path ``/api/v2``; lists ``GET /api/v2/<res>?limit=N&cursor=<opaque>&modified_since=<ISO>``
  (limit 1..200, default 50; ``modified_since`` is ``>=``; no "before" filter) answer
  ``{"items": [...], "next_cursor": "<opaque>" | null}`` ordered by ``modified_at`` then ``id``;
  contacts also take ``?email=``;
- ``POST`` (201), ``GET|PUT|DELETE /api/v2/<res>/{id}``; bodies are bare objects both ways; PUT is partial;
- ids are uuid4 strings; timestamps ISO 8601 with ``Z``; the updated-at field is ``modified_at``;
- contacts carry engagement, GymFlow's own: ``visits_last_30d`` (an integer) and ``last_visit_at`` (ISO),
  which the profile's rules read (``app:visits_last_30d``) to tag members engaged or at_risk;
- contacts: DELETE is soft (``deleted: true``, ``deleted_at`` set, ``modified_at`` bumped, still
  listed); tasks and notes (``contact_id`` must name a contact): DELETE removes them (204).
- webhooks (harness/simulators/app_push.py) on every change: ``{"event_id": uuid, "event":
  "<contact|task|note>.<created|updated|deleted>", "entity": "<contact|task|note>", "object": record}``,
  signed ``X-GymFlow-Signature: <base64 HMAC-SHA256 of "<X-GymFlow-Timestamp>.<body>">``, the
  timestamp in unix seconds.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI

from harness.simulators.app_push import Change, Push, Signing
from harness.simulators.base import SimState
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
    secret_is,
    since,
)
from harness.simulators.rest_app import RestSim
from harness.simulators.rest_paging import Cursor

RATE_LIMIT_PER_S = 20
LISTING = Listing(filters=(since("modified_since", ISO),))


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": message, "details": [message] if status == 422 else []}


def _resource(collection: str, param: str, fields: tuple[Field, ...], **more: Any) -> Resource:
    path = f"/api/v2/{collection}"
    return Resource(collection=collection, path=path, item_path=f"{path}/{{{param}}}", fields=fields,
                    ids=Ids("uuid"), paging=Cursor(50, 200), updated="modified_at", list_key="items",
                    update="PUT", **more)


CONTACTS = _resource(
    "contacts", "contact_id",
    (Field("email", "email"), Field("phone"), Field("first_name"), Field("last_name"), Field("tags", "strings"),
     Field("visits_last_30d", "int"), Field("last_visit_at", time=ISO)),
    lists=(Listing(filters=LISTING.filters, lookup=("email",)),),
    defaults={"tags": [], "deleted": False, "deleted_at": None},
    delete=SoftDelete({"deleted": True}, stamps=("deleted_at",)))
TASKS = _resource(
    "tasks", "task_id",
    (Field("title", required=True), Field("status", choices=("open", "completed")), Field("due", time=ISO)),
    lists=(LISTING,), defaults={"status": "open"}, delete=HardDelete(), parent=Parent("contact_id", "contacts"))
NOTES = _resource(
    "notes", "note_id", (Field("text", required=True),),
    lists=(LISTING,), delete=HardDelete(), parent=Parent("contact_id", "contacts"))


def _event(change: Change) -> tuple[dict[str, Any], str]:
    event_id = str(uuid.uuid4())
    return {"event_id": event_id, "event": change.type, "entity": change.noun, "object": change.record}, event_id


PUSH = Push(Signing("X-GymFlow-Signature", "base64", timestamp_header="X-GymFlow-Timestamp",
                    signed_text="timestamp.body"),
            {"contacts": "contact", "tasks": "task", "notes": "note"}, _event)


def create_app(api_key: str, state: SimState | None = None, rate_limit_per_s: int = RATE_LIMIT_PER_S) -> FastAPI:
    auth = HeaderAuth("Authorization", secret_is(api_key), scheme="Bearer")
    api = Api("GymFlow", auth, _error, (CONTACTS, TASKS, NOTES), rate_limit_per_s=rate_limit_per_s)
    return RestSim(api, state, push=PUSH).build()

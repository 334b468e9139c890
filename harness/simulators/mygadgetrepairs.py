"""MyGadgetRepairs simulator.

DOCUMENTED (shared/ref/apps/NOTES.md), served as published: base path ``/v1``; header
``Authorization: <api key>`` (the raw key, no scheme); lists are a bare JSON array; success 200/201;
collections take ``page`` (default 1), ``sort`` (default ``newest``) and ``createdDateFrom`` /
``createdDateTo`` in ``dd-mmm-yyyy`` form (``05-Nov-2026``); resources ``/customers``,
``/customers/{id}``, ``/customers/updated``, ``/projectTask``, ``/ticketComment``, ``/appointment``,
``/appointment/updated``; a customer is ``id`` (int), ``ref``, ``name_parts{first_name, middle_name,
last_name}``, ``email``, ``mobile``, ``phone``, ``company``, ``fulladdress{address, city, post_code,
country}``; children point at their customer as ``customer{internal_id}`` (as tickets do).

ASSUMPTIONS (not published):
- pages hold 25 records: a shorter page ends the list, a page past the end is ``[]``;
  ``sort`` is ``newest`` (created_date descending) or ``oldest``; ``createdDateTo`` includes its day;
- ``/<res>/updated?updatedDateFrom=dd-mmm-yyyy&page=N`` lists records whose ``last_updated`` is on or
  after that local day (day granularity), oldest first, paged the same way (also for projectTask and
  ticketComment);
- ``created_date`` / ``last_updated`` are "YYYY-MM-DD HH:MM:SS" in the shop's local time, with no
  zone, like every date and time here; the shop's zone is ``create_app(zone=...)`` (default UTC);
- ``GET /customers?email=`` exact, case-insensitive lookup (an array); ``POST /<res>`` creates (201,
  answers the bare object), ``PUT /<res>/{id}`` updates partially (nested objects merged); no DELETE;
- errors ``{"success": false, "message": "..."}`` with 400/401/404/422 (a child whose
  ``customer.internal_id`` names no customer is a 422); at most 10 requests per second, else 429
  with ``Retry-After: 1``;
- projectTask (collection ``tasks``): title (required), description, dueDate ``YYYY-MM-DD``, status
  ``Pending|Completed``; ticketComment (``notes``): comment (required); appointment
  (``appointments``): title, date ``dd-mmm-yyyy``, time ``HH:MM`` (24h), duration_minutes, status
  ``Booked|Cancelled|Completed``. Customers get ``ref`` ``CUS-<id>`` when none is given.
- webhooks (harness/simulators/app_push.py) on every change: ``{"event": "<customer|projectTask|
  ticketComment|appointment>.<created|updated>", "sent_at": ISO, "data": record}`` with no event id,
  signed ``X-MGR-Signature: <hex HMAC-SHA256 of the body>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from harness.simulators.app_push import Change, Push, Signing
from harness.simulators.base import SimState, now_iso
from harness.simulators.rest_api import (
    DATE,
    DAY_DMY,
    HH_MM,
    SQL,
    Api,
    Field,
    HeaderAuth,
    Ids,
    Listing,
    Order,
    Parent,
    Resource,
    before,
    secret_is,
    since,
)
from harness.simulators.rest_app import RestSim
from harness.simulators.rest_paging import FixedPages

RATE_LIMIT_PER_S = 10
PAGE_SIZE = 25
NAME_PARTS = ("first_name", "middle_name", "last_name")
ADDRESS_PARTS = ("address", "city", "post_code", "country")
SORTS = {"newest": Order("created_date", descending=True), "oldest": Order("created_date")}
CREATED_RANGE = (since("createdDateFrom", DAY_DMY, "created_date"),
                 before("createdDateTo", DAY_DMY, "created_date", whole_day=True))


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"success": False, "message": message}


def _sort(query: Mapping[str, str]) -> Order:
    sort = query.get("sort") or "newest"
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    return SORTS[sort]


def _resource(collection: str, path: str, param: str, fields: tuple[Field, ...], lookup: tuple[str, ...] = (),
              **more: Any) -> Resource:
    lists = (Listing(filters=CREATED_RANGE, lookup=lookup, order=_sort),
             Listing(path=f"{path}/updated", filters=(since("updatedDateFrom", DAY_DMY),)))
    return Resource(collection=collection, path=path, item_path=f"{path}/{{{param}}}", fields=fields,
                    ids=Ids("int"), paging=FixedPages(PAGE_SIZE), updated="last_updated", created="created_date",
                    clock=SQL, list_key=None, lists=lists, update="PUT", **more)


def _nested_parts(customer: dict[str, Any]) -> str | None:
    for name, parts in (("name_parts", NAME_PARTS), ("fulladdress", ADDRESS_PARTS)):
        value = customer.get(name) or {}
        if unknown := sorted(set(value) - set(parts)):
            return f"{name} has unknown fields: {', '.join(unknown)}"
        if any(v is not None and not isinstance(v, str) for v in value.values()):
            return f"{name} values must be strings"
    return None


def _give_ref(customer: dict[str, Any]) -> None:
    customer["ref"] = customer.get("ref") or f"CUS-{customer['id']}"


def _child(collection: str, path: str, param: str, fields: tuple[Field, ...], **more: Any) -> Resource:
    return _resource(collection, path, param, fields, parent=Parent("customer.internal_id", "customers"), **more)


CUSTOMERS = _resource(
    "customers", "/v1/customers", "customer_id",
    (Field("ref"), Field("name_parts", "dict"), Field("email", "email"), Field("mobile"), Field("phone"),
     Field("company"), Field("fulladdress", "dict")),
    lookup=("email",), defaults={"ref": None, "name_parts": dict.fromkeys(NAME_PARTS), "email": None,
                                 "mobile": None, "phone": None, "company": None,
                                 "fulladdress": dict.fromkeys(ADDRESS_PARTS)},
    check=_nested_parts, finish=_give_ref)
TASKS = _child(
    "tasks", "/v1/projectTask", "task_id",
    (Field("title", required=True), Field("description"), Field("dueDate", time=DATE),
     Field("status", choices=("Pending", "Completed"))),
    defaults={"status": "Pending"})
NOTES = _child("notes", "/v1/ticketComment", "comment_id", (Field("comment", required=True),))
APPOINTMENTS = _child(
    "appointments", "/v1/appointment", "appointment_id",
    (Field("title"), Field("date", time=DAY_DMY), Field("time", time=HH_MM), Field("duration_minutes", "int"),
     Field("status", choices=("Booked", "Cancelled", "Completed"))),
    defaults={"status": "Booked"})


def _event(change: Change) -> tuple[dict[str, Any], None]:
    return {"event": change.type, "sent_at": now_iso(), "data": change.record}, None


PUSH = Push(Signing("X-MGR-Signature", "hex"), {"customers": "customer", "tasks": "projectTask",
                                                "notes": "ticketComment", "appointments": "appointment"}, _event)


def create_app(api_key: str, state: SimState | None = None, rate_limit_per_s: int = RATE_LIMIT_PER_S,
               zone: str = "UTC") -> FastAPI:
    """``zone``: the shop's IANA time zone, which every date and time it serves is in."""
    api = Api("MyGadgetRepairs", HeaderAuth("Authorization", secret_is(api_key)), _error,
              (CUSTOMERS, TASKS, NOTES, APPOINTMENTS), rate_limit_per_s=rate_limit_per_s)
    return RestSim(api, state, zone, push=PUSH).build()

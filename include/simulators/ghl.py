"""GoHighLevel API v2 simulator (contacts), following shared/ref/ghl.

What it honours (see shared/ref/ghl/NOTES.md): Bearer auth with per-token scopes, the
required ``Version: 2021-07-28`` header, error bodies of common/common-schemas.json, the
X-RateLimit-* headers with 429 above 100 requests per 10 s (and the daily limit) per
location, ``POST /contacts/search`` with dateUpdated range filters, sort, ``pageLimit`` up
to 500 and the ``searchAfter`` cursor, and ``POST /contacts/upsert`` matching by email then
phone. Writes stamp ``dateUpdated`` with the real clock, as GHL does.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from include.simulators.base import SimState, error, install_common, iso_z, parse_iso, utcnow

API_VERSION = "2021-07-28"
BURST_MAX = 100
BURST_WINDOW_MS = 10_000
DAILY_MAX = 200_000
MAX_PAGE_LIMIT = 500
CONTACT_FIELDS = ("firstName", "lastName", "name", "email", "phone", "companyName", "source", "tags",
                  "address1", "city", "state", "postalCode", "country", "website", "timezone", "dnd")
READ, WRITE = "contacts.readonly", "contacts.write"


@dataclass
class RateLimiter:
    """Sliding 10 s window and a daily counter per location, as GHL applies them."""

    burst_max: int = BURST_MAX
    daily_max: int = DAILY_MAX
    hits: dict[str, deque] = field(default_factory=dict)
    daily: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, location: str) -> tuple[bool, dict[str, str]]:
        now = time.monotonic()
        with self.lock:
            window = self.hits.setdefault(location, deque())
            while window and now - window[0] >= BURST_WINDOW_MS / 1000:
                window.popleft()
            used_today = self.daily.get(location, 0)
            allowed = len(window) < self.burst_max and used_today < self.daily_max
            if allowed:
                window.append(now)
                self.daily[location] = used_today = used_today + 1
            headers = {
                "X-RateLimit-Limit-Daily": str(self.daily_max),
                "X-RateLimit-Daily-Remaining": str(max(0, self.daily_max - used_today)),
                "X-RateLimit-Interval-Milliseconds": str(BURST_WINDOW_MS),
                "X-RateLimit-Max": str(self.burst_max),
                "X-RateLimit-Remaining": str(max(0, self.burst_max - len(window))),
            }
            if not allowed:
                retry_after = BURST_WINDOW_MS / 1000 - (now - window[0]) if window else 1
                headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
        return allowed, headers


def new_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(20))


def _epoch_ms(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return parse_iso(str(value)).timestamp() * 1000


def _date_ms(contact: dict[str, Any], name: str) -> float:
    return parse_iso(contact[name]).timestamp() * 1000


def _matches(contact: dict[str, Any], flt: dict[str, Any]) -> bool:
    name, operator, value = flt.get("field"), flt.get("operator"), flt.get("value")
    if operator == "range" and name in ("dateUpdated", "dateAdded"):
        moment = _date_ms(contact, name)
        bounds = {"gt": moment.__gt__, "gte": moment.__ge__, "lt": moment.__lt__, "lte": moment.__le__}
        return all(bounds[op](_epoch_ms(v)) for op, v in value.items())
    actual = contact.get(name)
    if operator == "eq":
        return str(actual or "").lower() == str(value).lower()
    if operator == "exists":
        return actual not in (None, "", [])
    raise ValueError(f"unsupported filter {flt}")


class GHLSimulator:
    """State and rules of one simulated GHL account: tokens, locations, contacts."""

    def __init__(self, tokens: dict[str, dict[str, Any]], state: SimState | None = None,
                 limiter: RateLimiter | None = None):
        # tokens: access token -> {"location_id": ..., "scopes": [...]}
        self.tokens = tokens
        self.state = state or SimState()
        self.limiter = limiter or RateLimiter()
        self.contacts = self.state.table("contacts")

    def authorize(self, request: Request, scope: str) -> tuple[dict[str, Any] | None, JSONResponse | None]:
        if request.headers.get("version") != API_VERSION:
            return None, error(400, {"statusCode": 400, "message": f"Version header must be {API_VERSION}"})
        header = request.headers.get("authorization", "")
        grant = self.tokens.get(header.removeprefix("Bearer ").strip()) if header.startswith("Bearer ") else None
        if grant is None:
            return None, error(401, {"statusCode": 401, "message": "Invalid token: access token is invalid",
                                     "error": "Unauthorized"})
        if scope not in grant["scopes"] and not (scope == READ and WRITE in grant["scopes"]):
            return None, error(401, {"statusCode": 401, "message": "The token is not authorized for this scope.",
                                     "error": "Unauthorized"})
        allowed, headers = self.limiter.take(grant["location_id"])
        request.state.rate_headers = headers
        if not allowed:
            return None, JSONResponse(status_code=429, content={"statusCode": 429, "message": "Too Many Requests"},
                                      headers=headers)
        return grant, None

    def find_duplicate(self, location_id: str, email: str | None, phone: str | None) -> dict[str, Any] | None:
        for key, value in (("email", email), ("phone", phone)):
            if not value:
                continue
            for contact in self.contacts.values():
                if contact["locationId"] == location_id and str(contact.get(key) or "").lower() == value.lower():
                    return contact
        return None

    def write(self, contact: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        contact.update({k: body[k] for k in CONTACT_FIELDS if k in body})
        if contact.get("email"):
            contact["emailLowerCase"] = contact["email"].lower()
        contact["dateUpdated"] = iso_z(utcnow())
        return contact


def unprocessable(messages: list[str]) -> JSONResponse:
    return error(422, {"statusCode": 422, "message": messages, "error": "Unprocessable Entity"})


def validate_contact(body: dict[str, Any]) -> list[str]:
    problems = []
    email = body.get("email")
    if email and ("@" not in email or "." not in email.split("@")[-1]):
        problems.append("email must be an email")
    tags = body.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        problems.append("tags must be an array of strings")
    return problems


def create_app(sim: GHLSimulator) -> FastAPI:
    app = FastAPI(title="GoHighLevel simulator")
    app.state.sim = sim
    install_common(app, sim.state)

    @app.middleware("http")
    async def rate_limit_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in getattr(request.state, "rate_headers", {}).items():
            response.headers[name] = value
        return response

    def respond(status: int, body: dict[str, Any]) -> JSONResponse:
        return JSONResponse(status_code=status, content=body)

    @app.post("/contacts/search")
    async def search(request: Request):
        grant, denied = sim.authorize(request, READ)
        if denied:
            return denied
        body = await request.json()
        if body.get("locationId") != grant["location_id"]:
            return error(400, {"statusCode": 400, "message": "locationId does not match the token's location"})
        limit = int(body.get("pageLimit", 20))
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            return unprocessable([f"pageLimit must not be greater than {MAX_PAGE_LIMIT}"])
        sort = body.get("sort") or [{"field": "dateUpdated", "direction": "asc"}]
        if len(sort) > 2:
            return unprocessable(["sort accepts at most 2 entries"])
        try:
            with sim.state.lock:
                rows = [dict(c) for c in sim.contacts.values() if c["locationId"] == grant["location_id"]
                        and all(_matches(c, f) for f in body.get("filters", []))]
        except (ValueError, KeyError, AttributeError) as exc:
            return unprocessable([str(exc)])
        key = sort[0]["field"]
        descending = sort[0].get("direction", "asc") == "desc"
        for row in rows:
            row["searchAfter"] = [int(_date_ms(row, key)), row["id"]]
        rows.sort(key=lambda r: tuple(r["searchAfter"]), reverse=descending)
        if after := body.get("searchAfter"):
            after = (after[0], after[1])
            rows = [r for r in rows if (tuple(r["searchAfter"]) < after if descending else tuple(r["searchAfter"]) > after)]
            page_rows = rows[:limit]
        else:
            page = int(body.get("page", 1))
            page_rows = rows[(page - 1) * limit: page * limit]
        return {"contacts": page_rows, "total": len(rows)}

    @app.get("/contacts/{contact_id}")
    def get_contact(request: Request, contact_id: str):
        _, denied = sim.authorize(request, READ)
        if denied:
            return denied
        contact = sim.contacts.get(contact_id)
        if contact is None:
            return error(400, {"statusCode": 400, "message": "Contact not found"})
        return {"contact": contact}

    @app.post("/contacts/")
    async def create_contact(request: Request):
        grant, denied = sim.authorize(request, WRITE)
        if denied:
            return denied
        body = await request.json()
        if problems := validate_contact(body):
            return unprocessable(problems)
        with sim.state.lock:
            if duplicate := sim.find_duplicate(grant["location_id"], body.get("email"), body.get("phone")):
                return error(400, {"statusCode": 400, "message": "This location does not allow duplicated contacts.",
                                   "meta": {"contactId": duplicate["id"]}})
            contact = {"id": new_id(), "locationId": grant["location_id"], "dateAdded": iso_z(utcnow()), "tags": []}
            sim.contacts[contact["id"]] = sim.write(contact, body)
        return respond(201, {"contact": contact})

    @app.post("/contacts/upsert")
    async def upsert_contact(request: Request):
        grant, denied = sim.authorize(request, WRITE)
        if denied:
            return denied
        body = await request.json()
        if problems := validate_contact(body):
            return unprocessable(problems)
        with sim.state.lock:
            contact = sim.find_duplicate(grant["location_id"], body.get("email"), body.get("phone"))
            is_new = contact is None
            if is_new:
                contact = {"id": new_id(), "locationId": grant["location_id"], "dateAdded": iso_z(utcnow()), "tags": []}
                sim.contacts[contact["id"]] = contact
            sim.write(contact, body)
        return {"new": is_new, "contact": contact, "traceId": new_id()}

    @app.put("/contacts/{contact_id}")
    async def update_contact(request: Request, contact_id: str):
        _, denied = sim.authorize(request, WRITE)
        if denied:
            return denied
        body = await request.json()
        if problems := validate_contact(body):
            return unprocessable(problems)
        with sim.state.lock:
            contact = sim.contacts.get(contact_id)
            if contact is None:
                return error(400, {"statusCode": 400, "message": "Contact not found"})
            sim.write(contact, body)
        return {"succeded": True, "contact": contact}

    @app.delete("/contacts/{contact_id}")
    def delete_contact(request: Request, contact_id: str):
        _, denied = sim.authorize(request, WRITE)
        if denied:
            return denied
        with sim.state.lock:
            if sim.contacts.pop(contact_id, None) is None:
                return error(400, {"statusCode": 400, "message": "Contact not found"})
        return {"succeded": True}

    return app

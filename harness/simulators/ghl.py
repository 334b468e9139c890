"""GoHighLevel API v2 simulator, following the OpenAPI specs in harness/specs/ghl.

Operations (docs/ghl_operations.md lists them against the specs): contacts (search, get,
create, upsert, update, delete), their tasks, notes, tags and appointments, the location-wide
task search, calendars and their events, and ``POST /oauth/token``. Each route declares its spec
``security`` scope and required ``Version`` header; a contract test holds them to the spec.

What it honours (see shared/ref/ghl/NOTES.md): Bearer tokens with scopes (static ones, or
OAuth access tokens that expire, with refresh tokens rotated on every use), the error bodies
of common/common-schemas.json, X-RateLimit-* headers with 429 above 100 requests per 10 s
(and the daily limit) per location, search filters / sort / ``searchAfter`` paging, upsert
matching by email then phone, ``dateUpdated`` stamped on contact field and tag writes, and
Ed25519-signed webhooks delivered in the background. Strict mode (``strict=True``) also
validates request bodies against the spec and answers 422 as GHL does.

Admin routes (besides base.py's): ``POST /_sim/day`` (a new day, optionally a new daily limit),
``POST /_sim/oauth/clients``, ``POST /_sim/oauth/installs``,
``POST /_sim/webhooks``, ``GET /_sim/webhooks/deliveries``, ``POST /_sim/appointments``,
``DELETE /_sim/appointments/{id}``; ``POST /_sim/faults`` also takes ``expire_tokens``,
``ignore_paging`` (searches answer their first page forever) and ``rate_headers`` (headers set on
every answer, such as a broken ``X-RateLimit-Interval-Milliseconds``).
"""

from __future__ import annotations

import functools
import json
import secrets
import string
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from harness.simulators import ghl_keys, spec
from harness.simulators.base import SimState, Table, error, install_common, now_iso, parse_iso
from harness.simulators.ghl_webhooks import Webhooks

API_VERSION = "2021-07-28"
CALENDARS_VERSION = "2021-04-15"  # the Version calendars.json declares for GET /calendars/events
BURST_MAX = 100
BURST_WINDOW_MS = 10_000
DAILY_MAX = 200_000
MAX_PAGE_LIMIT = 500
MAX_PAGE_DEPTH = 10_000  # page/pageLimit stop here; searchAfter goes further (NOTES.md)
MAX_QUERY_LENGTH = 75
MAX_BODY_DEPTH = 32  # a JSON body nesting deeper is refused (400), never a RecursionError (500)
DEFAULT_ACCESS_TOKEN_TTL_S = 86_400
CONTACT_FIELDS = ("firstName", "lastName", "name", "email", "phone", "companyName", "source", "tags",
                  "address1", "city", "state", "postalCode", "country", "website", "timezone", "dnd",
                  "dateOfBirth", "assignedTo", "customFields")
TASK_FIELDS = ("title", "body", "dueDate", "completed", "assignedTo")
NOTE_FIELDS = ("userId", "body", "title", "color", "pinned")
DATE_FIELDS = ("dateUpdated", "dateAdded")
# Scopes: every operation needs exactly the scope of its spec `security`. GHL grants scopes one
# by one (oauth/Scopes.md) and neither the specs nor the guides say that a .write scope includes
# its .readonly sibling, so none is implied: a token with only contacts.write cannot read contacts.
READ, WRITE = "contacts.readonly", "contacts.write"
TASKS_SEARCH = "locations/tasks.readonly"
EVENTS_READ = "calendars/events.readonly"
CALENDARS_READ = "calendars.readonly"
SCOPES = (READ, WRITE, TASKS_SEARCH, EVENTS_READ, CALENDARS_READ)  # every scope the simulated operations check
# Webhook bodies carry the fields their schema in webhooks/*.md lists.
CONTACT_EVENT_FIELDS = ("id", "address1", "city", "companyName", "country", "source", "dateAdded", "dateOfBirth",
                        "dnd", "email", "name", "firstName", "lastName", "phone", "postalCode", "state", "tags",
                        "website", "attachments", "assignedTo", "customFields")
TASK_EVENT_FIELDS = ("id", "assignedTo", "body", "contactId", "title", "dateAdded", "dueDate")
NOTE_EVENT_FIELDS = ("id", "body", "contactId", "dateAdded")


class GHLError(Exception):
    """An answer in GHL's error shape, raised from anywhere in a request."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(body.get("message"))
        self.status, self.body, self.headers = status, body, headers


def bad_request(message: str) -> GHLError:
    return GHLError(400, {"statusCode": 400, "message": message})


def unauthorized(message: str) -> GHLError:
    return GHLError(401, {"statusCode": 401, "message": message, "error": "Unauthorized"})


def unprocessable(messages: list[str]) -> GHLError:
    return GHLError(422, {"statusCode": 422, "message": messages, "error": "Unprocessable Entity"})


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
    """A filter bound: epoch milliseconds or an ISO string."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return parse_iso(str(value)).timestamp() * 1000


def _date_ms(record: dict[str, Any], name: str) -> float:
    return parse_iso(record[name]).timestamp() * 1000 if record.get(name) else 0.0


def _text(value: Any) -> str:
    return str(value if value is not None else "").lower()


def _present(fields: tuple[str, ...], record: dict[str, Any]) -> dict[str, Any]:
    return {name: record[name] for name in fields if record.get(name) is not None}


# ---------------------------------------------------------------- contact search

RANGE_OPERATORS = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}


def _in_range(moment: float, bounds: Any) -> bool:
    if not isinstance(bounds, dict) or not bounds or set(bounds) - set(RANGE_OPERATORS):
        raise ValueError("a range filter's value takes gt, gte, lt and/or lte")
    return all(RANGE_OPERATORS[op](moment, _epoch_ms(bound)) for op, bound in bounds.items())


def _compare_text(actual: Any, operator: str, value: Any) -> bool:
    values = [_text(v) for v in actual] if isinstance(actual, list) else [_text(actual)]
    if operator in ("eq", "not_eq"):
        hit = _text(value) in values
    else:
        hit = any(_text(value) in v for v in values)
    return hit if operator in ("eq", "contains") else not hit


def _matches(contact: dict[str, Any], flt: dict[str, Any]) -> bool:
    """One search filter, or a group of them (``{group: AND|OR, filters: [...]}``)."""
    if "group" in flt:
        combine = all if str(flt["group"]).upper() == "AND" else any
        return combine(_matches(contact, f) for f in flt.get("filters", []))
    name, operator, value = flt.get("field"), flt.get("operator"), flt.get("value")
    actual = contact.get(name)
    if operator in ("exists", "not_exists"):
        return (actual not in (None, "", [])) == (operator == "exists")
    if name in DATE_FIELDS:
        if operator != "range":
            raise ValueError(f"{name} filters only by range or exists")
        return _in_range(_date_ms(contact, name), value)
    if operator in ("eq", "not_eq", "contains", "not_contains"):
        return _compare_text(actual, operator, value)
    raise ValueError(f"unsupported filter {flt}")


def _sort_value(contact: dict[str, Any], name: str) -> Any:
    return int(_date_ms(contact, name)) if name in DATE_FIELDS else _text(contact.get(name))


def _order(a: list[Any], b: list[Any], directions: list[str]) -> int:
    """Compare two searchAfter keys field by field, each in its own direction (the id last, ascending)."""
    for left, right, direction in zip(a, b, directions, strict=True):
        if left != right:
            smaller = left < right
            return (-1 if smaller else 1) * (-1 if direction == "desc" else 1)
    return 0


def _search_problems(body: dict[str, Any]) -> list[str]:
    limit, page = body.get("pageLimit", 20), body.get("page", 1)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
        return [f"pageLimit must be an integer from 1 to {MAX_PAGE_LIMIT}"]
    if not isinstance(page, int) or page < 1:
        return ["page must be a positive integer"]
    problems = []
    if len(body.get("sort") or []) > 2:
        problems.append("sort accepts at most 2 entries")
    if len(str(body.get("query") or "")) > MAX_QUERY_LENGTH:
        problems.append(f"query must be shorter than or equal to {MAX_QUERY_LENGTH} characters")
    if not body.get("searchAfter") and page * limit > MAX_PAGE_DEPTH:
        problems.append(f"page beyond {MAX_PAGE_DEPTH} results: use searchAfter")
    return problems


def _query_matches(contact: dict[str, Any], query: str) -> bool:
    return any(query.lower() in _text(contact.get(name))
               for name in ("firstName", "lastName", "name", "email", "phone", "companyName"))


def search_contacts(contacts: list[dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    """The answer to ``POST /contacts/search`` over one location's contacts (raises ValueError)."""
    sort = body.get("sort") or [{"field": "dateUpdated", "direction": "asc"}]
    names = [entry["field"] for entry in sort]
    directions = [entry.get("direction", "asc") for entry in sort] + ["asc"]
    rows = [dict(c) for c in contacts if all(_matches(c, f) for f in body.get("filters", []))
            and _query_matches(c, str(body.get("query") or ""))]
    for row in rows:
        row["searchAfter"] = [*(_sort_value(row, name) for name in names), row["id"]]
    rows.sort(key=functools.cmp_to_key(lambda a, b: _order(a["searchAfter"], b["searchAfter"], directions)))
    limit = int(body.get("pageLimit", 20))
    if cursor := body.get("searchAfter"):
        if len(cursor) != len(directions):
            raise ValueError(f"searchAfter must have {len(directions)} values, as the hits' searchAfter")
        for position, (value, name) in enumerate(zip(cursor, [*names, "id"], strict=True)):
            number = name in DATE_FIELDS
            if isinstance(value, bool) or not isinstance(value, (int, float) if number else str):
                raise ValueError(f"searchAfter[{position}] must be a {'number' if number else 'string'}, "
                                 "as in the hits' searchAfter")
        page = [r for r in rows if _order(r["searchAfter"], list(cursor), directions) > 0][:limit]
    else:
        start = (int(body.get("page", 1)) - 1) * limit
        page = rows[start:start + limit]
    # The spec's list DTO says `count`; GHL answers `total` (NOTES.md): follow GHL.
    return {"contacts": page, "total": len(rows)}


# ---------------------------------------------------------------- the simulated account

@dataclass(frozen=True)
class Installation:
    """An OAuth app installed on a location: what its tokens may do."""

    client_id: str
    location_id: str
    scopes: tuple[str, ...]
    user_id: str
    company_id: str


@dataclass(frozen=True)
class Call:
    """An authorised API call: the token's grant and the JSON body ({} when none)."""

    grant: dict[str, Any]
    body: dict[str, Any]

    @property
    def location_id(self) -> str:
        return self.grant["location_id"]


class GHLSimulator:
    """State and rules of one simulated GHL account: tokens, OAuth apps, records, webhooks."""

    def __init__(self, tokens: dict[str, dict[str, Any]], state: SimState | None = None,
                 limiter: RateLimiter | None = None, *, access_token_ttl_s: float = DEFAULT_ACCESS_TOKEN_TTL_S,
                 strict: bool = False, webhook_key: Ed25519PrivateKey | None = None,
                 webhook_attempts: int = 3):
        # tokens: access token -> {"location_id": ..., "scopes": [...]}, plus "expires_at"
        # (epoch seconds) for OAuth access tokens; static ones (Private Integration Tokens) never expire.
        self.tokens = tokens
        self.state = state or SimState()
        self.limiter = limiter or RateLimiter()
        self.access_token_ttl_s = access_token_ttl_s
        self.strict = strict
        self.webhooks = Webhooks(webhook_key or ghl_keys.private_key(), max_attempts=webhook_attempts)
        self.contacts = self.state.table("contacts")
        self.tasks = self.state.table("tasks")
        self.notes = self.state.table("notes")
        self.appointments = self.state.table("appointments")
        self.calendars = self.state.table("calendars")
        self.oauth_clients: dict[str, str] = {}
        self.auth_codes: dict[str, Installation] = {}
        self.refresh_tokens: dict[str, Installation] = {}
        self.ignore_paging = False  # fault: searches answer their first page whatever the cursor or skip
        self.header_overrides: dict[str, str] = {}  # fault: odd rate-limit headers on every answer

    # ------------------------------------------------------------ auth

    def authorize(self, request: Request, scope: str, version: str) -> dict[str, Any]:
        """The grant of the request's token, after GHL's checks in GHL's order; raises GHLError."""
        if request.headers.get("version") != version:
            raise bad_request(f"Version header must be {version}")
        header = request.headers.get("authorization", "")
        grant = self.tokens.get(header.removeprefix("Bearer ").strip()) if header.startswith("Bearer ") else None
        if grant is None:
            raise unauthorized("Invalid token: access token is invalid")
        if grant.get("expires_at") is not None and time.time() >= grant["expires_at"]:
            raise unauthorized("Invalid JWT")  # GHL's wording for an expired access token
        if scope not in grant["scopes"]:
            raise unauthorized("The token is not authorized for this scope.")
        allowed, headers = self.limiter.take(grant["location_id"])
        request.state.rate_headers = headers
        if not allowed:
            self.state.calls[f"429 {grant['location_id']}"] += 1  # per location, in /_sim/calls
            raise GHLError(429, {"statusCode": 429, "message": "Too Many Requests"}, headers)
        return grant

    def register_client(self, client_id: str, client_secret: str) -> None:
        with self.state.lock:
            self.oauth_clients[client_id] = client_secret

    def install(self, installation: Installation) -> dict[str, str]:
        """An app installed on a location: a fresh authorization code and refresh token for it."""
        if installation.client_id not in self.oauth_clients:
            raise bad_request(f"unknown client_id {installation.client_id}")
        code, refresh_token = secrets.token_hex(20), secrets.token_hex(24)
        with self.state.lock:
            self.auth_codes[code] = installation
            self.refresh_tokens[refresh_token] = installation
        return {"code": code, "refresh_token": refresh_token}

    def exchange(self, form: dict[str, str]) -> dict[str, Any]:
        """``POST /oauth/token``: an authorization code or a refresh token for new tokens.

        The refresh token used dies here: only the one in this answer works from now on.
        """
        missing = [f"{name} should not be empty" for name in ("client_id", "client_secret", "grant_type")
                   if not form.get(name)]
        if missing:
            raise unprocessable(missing)
        if self.oauth_clients.get(form["client_id"]) != form["client_secret"]:
            raise unauthorized("Invalid client credentials")
        if form.get("user_type", "Location") != "Location":
            raise bad_request("the simulator issues Location tokens only (user_type=Location)")
        grants = {"authorization_code": (self.auth_codes, "code"), "refresh_token": (self.refresh_tokens,
                                                                                     "refresh_token")}
        if form["grant_type"] not in grants:
            raise bad_request(f"unsupported grant_type {form['grant_type']}")
        store, key = grants[form["grant_type"]]
        with self.state.lock:
            installation = store.get(form.get(key, ""))
            if installation is None or installation.client_id != form["client_id"]:
                raise bad_request(f"Invalid grant: {key} is invalid, expired or already used")
            del store[form[key]]
            return self._issue(installation)

    def _issue(self, installation: Installation) -> dict[str, Any]:
        access_token, refresh_token = secrets.token_hex(24), secrets.token_hex(24)
        self.tokens[access_token] = {"location_id": installation.location_id, "scopes": list(installation.scopes),
                                     "expires_at": time.time() + self.access_token_ttl_s}
        self.refresh_tokens[refresh_token] = installation
        return {"access_token": access_token, "token_type": "Bearer", "expires_in": int(self.access_token_ttl_s),
                "refresh_token": refresh_token, "scope": " ".join(installation.scopes), "userType": "Location",
                "locationId": installation.location_id, "companyId": installation.company_id,
                "userId": installation.user_id}

    def expire_tokens(self, _: Any = None) -> None:
        """Fault ``expire_tokens``: every OAuth access token expires now (static tokens cannot)."""
        with self.state.lock:
            for grant in self.tokens.values():
                if grant.get("expires_at") is not None:
                    grant["expires_at"] = 0.0

    # ------------------------------------------------------------ records

    def contact(self, call: Call, contact_id: str) -> dict[str, Any]:
        contact = self.contacts.get(contact_id)
        if contact is None or contact.get("locationId") != call.location_id:
            raise bad_request("Contact not found")
        return contact

    def child(self, table: dict[str, dict[str, Any]], contact: dict[str, Any], child_id: str,
              kind: str) -> dict[str, Any]:
        record = table.get(child_id)
        if record is None or record.get("contactId") != contact["id"]:
            raise bad_request(f"{kind} not found")
        return record

    def children(self, table: Table, contact_id: str, order: str = "dateAdded") -> list[dict[str, Any]]:
        return sorted(table.by("contactId", contact_id), key=lambda r: (str(r.get(order) or ""), r["id"]))

    def find_duplicate(self, location_id: str, email: str | None, phone: str | None) -> dict[str, Any] | None:
        for key, value in (("email", email), ("phone", phone)):
            if not value:
                continue
            for contact in self.contacts.values():
                if contact["locationId"] == location_id and _text(contact.get(key)) == value.lower():
                    return contact
        return None

    def new_contact(self, location_id: str) -> dict[str, Any]:
        contact = {"id": new_id(), "locationId": location_id, "dateAdded": now_iso(), "tags": []}
        self.contacts[contact["id"]] = contact
        return contact

    def write(self, contact: dict[str, Any], body: dict[str, Any]) -> set[str]:
        """Apply contact fields (``tags`` replaces all tags, ``null`` clears a field); stamps
        dateUpdated; returns the changed fields."""
        changed = assign(contact, body, CONTACT_FIELDS)
        contact.setdefault("tags", [])
        if contact.get("email"):
            contact["emailLowerCase"] = contact["email"].lower()
        else:
            contact.pop("emailLowerCase", None)
        contact["dateUpdated"] = now_iso()
        return changed

    def contact_events(self, contact: dict[str, Any], created: bool, changed: set[str]) -> None:
        """ContactCreate, or ContactUpdate and/or ContactTagUpdate for what actually changed."""
        if created:
            self.emit_contact("ContactCreate", contact)
            return
        if changed - {"tags"}:
            self.emit_contact("ContactUpdate", contact)
        if "tags" in changed:
            self.emit_contact("ContactTagUpdate", contact)

    def emit_contact(self, event_type: str, contact: dict[str, Any]) -> None:
        self.webhooks.emit(event_type, contact["locationId"], _present(CONTACT_EVENT_FIELDS, contact))

    def emit_task(self, event_type: str, location_id: str, task: dict[str, Any]) -> None:
        self.webhooks.emit(event_type, location_id, _present(TASK_EVENT_FIELDS, task))

    def emit_note(self, event_type: str, location_id: str, note: dict[str, Any]) -> None:
        self.webhooks.emit(event_type, location_id, _present(NOTE_EVENT_FIELDS, note))

    def emit_appointment(self, event_type: str, appointment: dict[str, Any]) -> None:
        self.webhooks.emit(event_type, appointment["locationId"], {"appointment": dict(appointment)})


def assign(record: dict[str, Any], body: dict[str, Any], fields: tuple[str, ...]) -> set[str]:
    """Write the body's fields; a field written as ``null`` is cleared, never stored as null
    (the response schemas type them string). Returns the fields that changed."""
    changed = {k for k in fields if k in body and record.get(k) != body[k]}
    for name in changed:
        if body[name] is None:
            record.pop(name, None)
        else:
            record[name] = body[name]
    return changed


def validate_contact(body: dict[str, Any]) -> list[str]:
    """The checks GHL makes on contact bodies even when the spec's types are met."""
    problems = []
    email = body.get("email")
    if email and ("@" not in email or "." not in email.split("@")[-1]):
        problems.append("email must be an email")
    tags = body.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        problems.append("tags must be an array of strings")
    return problems


def require(body: dict[str, Any], *names: str) -> None:
    if missing := [f"{name} should not be empty" for name in names if body.get(name) in (None, "")]:
        raise unprocessable(missing)


# ---------------------------------------------------------------- the app

Register = Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]]


def _declare(app: FastAPI) -> Register:
    """Route decorator carrying the spec's ``security`` scope and required ``Version`` header
    in the route's OpenAPI, where the auth dependency, the docs and the contract test read them."""

    def operation(method: str, path: str, scope: str, *, version: str = API_VERSION, status: int = 200):
        def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
            app.add_api_route(path, endpoint, methods=[method], status_code=status,
                              openapi_extra={"security": [{"bearer": [scope]}], "x-ghl-version": version})
            return endpoint
        return register

    return operation


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
        too_deep = _depth(body) > MAX_BODY_DEPTH
    except ValueError:
        raise bad_request("Unexpected token in JSON body") from None
    except RecursionError:
        too_deep = True
    if too_deep:
        raise bad_request(f"JSON body nests deeper than {MAX_BODY_DEPTH} levels")
    if not isinstance(body, dict):
        raise unprocessable(["body must be a JSON object"])
    return body


def _depth(value: Any) -> int:
    """How deep arrays and objects nest in a JSON value, counted without recursion."""
    deepest, level = 0, [(value, 1)]
    while level:
        node, depth = level.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            level.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _authorizer(sim: GHLSimulator) -> Callable[..., Any]:
    async def authorized_call(request: Request) -> Call:
        route = request.scope["route"]
        extra = route.openapi_extra
        grant = sim.authorize(request, extra["security"][0]["bearer"][0], extra["x-ghl-version"])
        if not spec.takes_body(request.method, route.path):
            return Call(grant, {})  # as GHL, a body on GET or DELETE of a record is ignored
        body = await _json_body(request)
        if sim.strict and (problems := spec.request_problems(request.method, route.path, body)):
            raise unprocessable(problems)
        return Call(grant, body)

    return authorized_call


def create_app(sim: GHLSimulator) -> FastAPI:
    app = FastAPI(title="GoHighLevel simulator")
    app.state.sim = sim
    install_common(app, sim.state, fault_actions={
        "expire_tokens": sim.expire_tokens,
        "ignore_paging": lambda on: setattr(sim, "ignore_paging", bool(on)),
        "rate_headers": lambda headers: sim.header_overrides.update({str(k): str(v) for k, v in headers.items()})})

    @app.middleware("http")
    async def rate_limit_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in {**getattr(request.state, "rate_headers", {}), **sim.header_overrides}.items():
            response.headers[name] = value
        return response

    @app.exception_handler(GHLError)
    async def ghl_error(_: Request, exc: GHLError) -> JSONResponse:
        return error(exc.status, exc.body, exc.headers)

    operation, authorized = _declare(app), Depends(_authorizer(sim))
    for add_routes in (_contact_routes, _task_routes, _note_routes, _tag_routes, _appointment_routes):
        add_routes(operation, authorized, sim)
    _oauth_routes(app, sim)
    app.include_router(_admin_routes(sim))
    return app


def _contact_routes(operation: Register, authorized: Any, sim: GHLSimulator) -> None:
    @operation("POST", "/contacts/search", READ)
    def search(call: Call = authorized):
        if call.body.get("locationId") != call.location_id:
            raise bad_request("locationId does not match the token's location")
        if problems := _search_problems(call.body):
            raise unprocessable(problems)
        with sim.state.lock:
            contacts = [c for c in sim.contacts.values() if c.get("locationId") == call.location_id]
        try:
            return search_contacts(contacts, {k: v for k, v in call.body.items()
                                              if not (sim.ignore_paging and k in ("searchAfter", "page"))})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise unprocessable([str(exc)]) from None

    @operation("GET", "/contacts/{contact_id}", READ)
    def get_contact(contact_id: str, call: Call = authorized):
        return {"contact": sim.contact(call, contact_id)}

    @operation("POST", "/contacts/", WRITE, status=201)
    def create_contact(call: Call = authorized):
        check_contact_body(call)
        with sim.state.lock:
            if duplicate := sim.find_duplicate(call.location_id, call.body.get("email"), call.body.get("phone")):
                raise GHLError(400, {"statusCode": 400, "message": "This location does not allow duplicated contacts.",
                                     "meta": {"contactId": duplicate["id"]}})
            contact = sim.new_contact(call.location_id)
            sim.write(contact, call.body)
            sim.contact_events(contact, created=True, changed=set())
            return {"contact": dict(contact)}

    @operation("POST", "/contacts/upsert", WRITE)
    def upsert_contact(call: Call = authorized):
        check_contact_body(call)
        with sim.state.lock:
            contact = sim.find_duplicate(call.location_id, call.body.get("email"), call.body.get("phone"))
            created = contact is None
            contact = sim.new_contact(call.location_id) if created else contact
            sim.contact_events(contact, created, sim.write(contact, call.body))
            return {"new": created, "contact": dict(contact), "traceId": str(uuid.uuid4())}

    @operation("PUT", "/contacts/{contact_id}", WRITE)
    def update_contact(contact_id: str, call: Call = authorized):
        check_contact_body(call)
        with sim.state.lock:
            contact = sim.contact(call, contact_id)
            sim.contact_events(contact, False, sim.write(contact, call.body))
            return {"succeded": True, "contact": dict(contact)}

    @operation("DELETE", "/contacts/{contact_id}", WRITE)
    def delete_contact(contact_id: str, call: Call = authorized):
        with sim.state.lock:
            contact = sim.contacts.pop(sim.contact(call, contact_id)["id"])
            for table in (sim.tasks, sim.notes):  # they go with their contact
                for child in sim.children(table, contact_id):
                    del table[child["id"]]
            sim.emit_contact("ContactDelete", contact)
        return {"succeded": True}

    def check_contact_body(call: Call) -> None:
        if call.body.get("locationId", call.location_id) != call.location_id:
            raise bad_request("locationId does not match the token's location")
        if problems := validate_contact(call.body):
            raise unprocessable(problems)


def _task_routes(operation: Register, authorized: Any, sim: GHLSimulator) -> None:
    def apply(task: dict[str, Any], body: dict[str, Any], location_id: str) -> dict[str, Any]:
        """Write task fields; completing an open task is the TaskComplete event."""
        was_completed = bool(task.get("completed"))
        assign(task, body, TASK_FIELDS)
        if task.get("completed") and not was_completed:
            sim.emit_task("TaskComplete", location_id, task)
        return {"task": dict(task)}

    @operation("GET", "/contacts/{contact_id}/tasks", READ)
    def list_tasks(contact_id: str, call: Call = authorized):
        with sim.state.lock:
            return {"tasks": sim.children(sim.tasks, sim.contact(call, contact_id)["id"])}

    @operation("POST", "/contacts/{contact_id}/tasks", WRITE, status=201)
    def create_task(contact_id: str, call: Call = authorized):
        require(call.body, "title", "dueDate", "completed")
        with sim.state.lock:
            contact = sim.contact(call, contact_id)
            task = {"id": new_id(), "contactId": contact["id"], "dateAdded": now_iso()}
            assign(task, call.body, TASK_FIELDS)
            sim.tasks[task["id"]] = task
            sim.emit_task("TaskCreate", call.location_id, task)
            return {"task": dict(task)}

    @operation("GET", "/contacts/{contact_id}/tasks/{task_id}", READ)
    def get_task(contact_id: str, task_id: str, call: Call = authorized):
        with sim.state.lock:
            return {"task": sim.child(sim.tasks, sim.contact(call, contact_id), task_id, "Task")}

    @operation("PUT", "/contacts/{contact_id}/tasks/{task_id}", WRITE)
    def update_task(contact_id: str, task_id: str, call: Call = authorized):
        with sim.state.lock:
            task = sim.child(sim.tasks, sim.contact(call, contact_id), task_id, "Task")
            return apply(task, call.body, call.location_id)

    @operation("PUT", "/contacts/{contact_id}/tasks/{task_id}/completed", WRITE)
    def complete_task(contact_id: str, task_id: str, call: Call = authorized):
        if not isinstance(call.body.get("completed"), bool):
            raise unprocessable(["completed must be a boolean value"])
        with sim.state.lock:
            task = sim.child(sim.tasks, sim.contact(call, contact_id), task_id, "Task")
            return apply(task, {"completed": call.body["completed"]}, call.location_id)

    @operation("DELETE", "/contacts/{contact_id}/tasks/{task_id}", WRITE)
    def delete_task(contact_id: str, task_id: str, call: Call = authorized):
        with sim.state.lock:
            task = sim.tasks.pop(sim.child(sim.tasks, sim.contact(call, contact_id), task_id, "Task")["id"])
            sim.emit_task("TaskDelete", call.location_id, task)
        return {"succeded": True}

    @operation("POST", "/locations/{location_id}/tasks/search", TASKS_SEARCH)
    def search_tasks(location_id: str, call: Call = authorized):
        if location_id != call.location_id:
            raise bad_request("locationId does not match the token's location")
        limit, skip = call.body.get("limit", 25), call.body.get("skip", 0)
        if not isinstance(limit, int) or not isinstance(skip, int) or limit < 1 or skip < 0:
            raise unprocessable(["limit must be a positive integer and skip a non-negative one"])
        with sim.state.lock:
            tasks = [t for t in sim.tasks.values() if task_matches(t, call)]
        tasks.sort(key=lambda t: (str(t.get("dateAdded") or ""), t["id"]))  # oldest first, stable pages
        skip = 0 if sim.ignore_paging else skip
        return {"tasks": tasks[skip:skip + limit]}

    def task_matches(task: dict[str, Any], call: Call) -> bool:
        body, contact = call.body, sim.contacts.get(task.get("contactId", ""))
        query = _text(body.get("query"))
        return (contact is not None and contact.get("locationId") == call.location_id
                and ("contactId" not in body or task["contactId"] in body["contactId"])
                and ("completed" not in body or bool(task.get("completed")) == body["completed"])
                and ("assignedTo" not in body or task.get("assignedTo") in body["assignedTo"])
                and (not query or query in _text(task.get("title")) or query in _text(task.get("body"))))


def _note_routes(operation: Register, authorized: Any, sim: GHLSimulator) -> None:
    @operation("GET", "/contacts/{contact_id}/notes", READ)
    def list_notes(contact_id: str, call: Call = authorized):
        with sim.state.lock:
            return {"notes": sim.children(sim.notes, sim.contact(call, contact_id)["id"])}

    @operation("POST", "/contacts/{contact_id}/notes", WRITE, status=201)
    def create_note(contact_id: str, call: Call = authorized):
        require(call.body, "body")
        with sim.state.lock:
            contact = sim.contact(call, contact_id)
            note = {"id": new_id(), "contactId": contact["id"], "dateAdded": now_iso()}
            assign(note, call.body, NOTE_FIELDS)
            sim.notes[note["id"]] = note
            sim.emit_note("NoteCreate", call.location_id, note)
            return {"note": dict(note)}

    @operation("GET", "/contacts/{contact_id}/notes/{note_id}", READ)
    def get_note(contact_id: str, note_id: str, call: Call = authorized):
        with sim.state.lock:
            return {"note": sim.child(sim.notes, sim.contact(call, contact_id), note_id, "Note")}

    @operation("PUT", "/contacts/{contact_id}/notes/{note_id}", WRITE)
    def update_note(contact_id: str, note_id: str, call: Call = authorized):
        with sim.state.lock:
            note = sim.child(sim.notes, sim.contact(call, contact_id), note_id, "Note")
            assign(note, call.body, NOTE_FIELDS)
            sim.emit_note("NoteUpdate", call.location_id, note)
            return {"note": dict(note)}

    @operation("DELETE", "/contacts/{contact_id}/notes/{note_id}", WRITE)
    def delete_note(contact_id: str, note_id: str, call: Call = authorized):
        with sim.state.lock:
            note = sim.notes.pop(sim.child(sim.notes, sim.contact(call, contact_id), note_id, "Note")["id"])
            sim.emit_note("NoteDelete", call.location_id, note)
        return {"succeded": True}


def _tag_routes(operation: Register, authorized: Any, sim: GHLSimulator) -> None:
    def retag(contact_id: str, call: Call, change: Callable[[list[str], list[str]], list[str]]) -> dict[str, Any]:
        """Add or remove tags; a real change stamps dateUpdated and is a ContactTagUpdate."""
        tags = call.body.get("tags")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise unprocessable(["tags must be an array of strings"])
        with sim.state.lock:
            contact = sim.contact(call, contact_id)
            before = list(contact.get("tags") or [])
            after = change(before, tags)
            if after != before:
                contact["tags"], contact["dateUpdated"] = after, now_iso()
                sim.emit_contact("ContactTagUpdate", contact)
            return {"tags": after}

    @operation("POST", "/contacts/{contact_id}/tags", WRITE, status=201)
    def add_tags(contact_id: str, call: Call = authorized):
        return retag(contact_id, call, lambda old, new: old + [t for t in dict.fromkeys(new) if t not in old])

    @operation("DELETE", "/contacts/{contact_id}/tags", WRITE)
    def remove_tags(contact_id: str, call: Call = authorized):
        return retag(contact_id, call, lambda old, gone: [t for t in old if t not in gone])


def _ms_param(request: Request, name: str) -> int:
    value = request.query_params.get(name, "")
    if not value.isdigit():
        raise bad_request(f"{name} must be epoch milliseconds")
    return int(value)


def _appointment_routes(operation: Register, authorized: Any, sim: GHLSimulator) -> None:
    def by_start(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(events, key=lambda e: (_date_ms(e, "startTime"), e["id"]))

    @operation("GET", "/contacts/{contact_id}/appointments", READ)
    def contact_appointments(contact_id: str, call: Call = authorized):
        with sim.state.lock:
            contact = sim.contact(call, contact_id)
            return {"events": by_start(sim.appointments.by("contactId", contact["id"]))}

    @operation("GET", "/calendars/", CALENDARS_READ, version=CALENDARS_VERSION)
    def list_calendars(request: Request, call: Call = authorized):
        """The location's calendars: those seeded, plus one for each calendar id its appointments
        name (a booking always belongs to a calendar in GHL)."""
        if request.query_params.get("locationId") != call.location_id:
            raise bad_request("locationId does not match the token's location")
        group = request.query_params.get("groupId")
        with sim.state.lock:
            calendars = {c["id"]: dict(c) for c in sim.calendars.values() if c.get("locationId") == call.location_id}
            for event in sim.appointments.values():
                named = event.get("calendarId")
                if event.get("locationId") == call.location_id and named and named not in calendars:
                    calendars[named] = {"id": named, "locationId": call.location_id, "name": named,
                                        "groupId": event.get("groupId"), "isActive": True}
        listed = [c for c in calendars.values() if group in (None, c.get("groupId"))]
        return {"calendars": [{k: v for k, v in c.items() if v is not None} for c in sorted(listed, key=lambda c: c["id"])]}

    @operation("GET", "/calendars/events", EVENTS_READ, version=CALENDARS_VERSION)
    def calendar_events(request: Request, call: Call = authorized):
        if request.query_params.get("locationId") != call.location_id:
            raise bad_request("locationId does not match the token's location")
        start, end = _ms_param(request, "startTime"), _ms_param(request, "endTime")
        selectors = {k: request.query_params[k] for k in ("calendarId", "userId", "groupId")
                     if request.query_params.get(k)}
        if not selectors:
            raise bad_request("Either of calendarId, userId or groupId is required")
        with sim.state.lock:
            events = [a for a in sim.appointments.values() if a.get("locationId") == call.location_id
                      and start <= _date_ms(a, "startTime") <= end and selected(a, selectors)]
        return {"events": by_start(events)}

    def selected(event: dict[str, Any], selectors: dict[str, str]) -> bool:
        user = selectors.get("userId")
        return (selectors.get("calendarId") in (None, event.get("calendarId"))
                and selectors.get("groupId") in (None, event.get("groupId"))
                and (user is None or user == event.get("assignedUserId") or user in (event.get("users") or [])))


def _oauth_routes(app: FastAPI, sim: GHLSimulator) -> None:
    @app.post("/oauth/token", openapi_extra={"security": []})
    async def token(request: Request):
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise bad_request("Content-Type must be application/x-www-form-urlencoded")
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
        return sim.exchange(form)


def _admin_routes(sim: GHLSimulator) -> APIRouter:
    """Test and demo controls: OAuth apps, webhook targets, and appointments booked in GHL."""
    admin = APIRouter(prefix="/_sim")

    @admin.post("/oauth/clients")
    def register_client(body: dict[str, Any]) -> dict[str, str]:
        client_id = body.get("client_id") or f"sim-client-{new_id()}"
        client_secret = body.get("client_secret") or secrets.token_hex(16)
        sim.register_client(client_id, client_secret)
        return {"client_id": client_id, "client_secret": client_secret}

    @admin.post("/oauth/installs")
    def install(body: dict[str, Any]) -> dict[str, str]:
        """Install an app on a location: answers an authorization code and a refresh token."""
        return sim.install(Installation(body["client_id"], body["location_id"], tuple(body.get("scopes", [])),
                                        body.get("user_id", "sim-user"), body.get("company_id", "sim-company")))

    @admin.post("/day")
    def new_day(body: dict[str, Any]) -> dict[str, int]:
        """A new day for the daily limit: every location's count starts again (``daily_max``: a new limit)."""
        with sim.limiter.lock:
            sim.limiter.daily_max = int(body.get("daily_max", sim.limiter.daily_max))
            sim.limiter.daily.clear()
        return {"daily_max": sim.limiter.daily_max}

    @admin.post("/webhooks")
    def add_webhook_target(body: dict[str, Any]) -> dict[str, list[str]]:
        try:
            sim.webhooks.register(str(body.get("url", "")))
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        return {"targets": list(sim.webhooks.targets)}

    @admin.get("/webhooks/deliveries")
    def deliveries() -> list[dict[str, Any]]:
        return list(sim.webhooks.deliveries)

    @admin.post("/appointments")
    def book(body: dict[str, Any]) -> dict[str, Any]:
        """Create or change an appointment as a booking in GHL would: stored, and its webhook sent."""
        require(body, "locationId", "contactId")
        with sim.state.lock:
            existing = sim.appointments.get(str(body.get("id", "")))
            stamp = now_iso()
            appointment = {"id": new_id(), "dateAdded": stamp, **(existing or {}), **body, "dateUpdated": stamp}
            sim.appointments[appointment["id"]] = appointment
            sim.emit_appointment("AppointmentUpdate" if existing else "AppointmentCreate", appointment)
            return appointment

    @admin.delete("/appointments/{appointment_id}")
    def cancel(appointment_id: str) -> dict[str, bool]:
        with sim.state.lock:
            appointment = sim.appointments.pop(appointment_id, None)
            if appointment is None:
                raise bad_request("Appointment not found")
            sim.emit_appointment("AppointmentDelete", appointment)
        return {"succeded": True}

    return admin

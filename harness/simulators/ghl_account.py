"""The simulated GHL account behind harness.simulators.ghl: its limits, scopes and errors, tokens and
installs, contacts and their events, and the per-location rate limiter (NOTES.md's figures)."""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Request

from harness.simulators import ghl_keys
from harness.simulators.base import SimState, Table, now_iso, parse_iso
from harness.simulators.ghl_custom_fields import custom_field_problems, merged_custom_fields
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
    """Sliding 10 s window and a daily counter per location, as GHL applies them. ``burst_max`` and
    ``daily_max`` hold for every location but those given their own in ``overrides``
    (location -> {"burst_max": n, "daily_max": n}), as an agency's sub-accounts differ."""

    burst_max: int = BURST_MAX
    daily_max: int = DAILY_MAX
    hits: dict[str, deque] = field(default_factory=dict)
    daily: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    overrides: dict[str, dict[str, int]] = field(default_factory=dict)

    def limits(self, location: str) -> tuple[int, int]:
        """(burst max, daily max) of one location."""
        own = self.overrides.get(location, {})
        return own.get("burst_max", self.burst_max), own.get("daily_max", self.daily_max)

    def take(self, location: str) -> tuple[bool, dict[str, str]]:
        now = time.monotonic()
        with self.lock:
            burst_max, daily_max = self.limits(location)
            window = self.hits.setdefault(location, deque())
            while window and now - window[0] >= BURST_WINDOW_MS / 1000:
                window.popleft()
            used_today = self.daily.get(location, 0)
            allowed = len(window) < burst_max and used_today < daily_max
            if allowed:
                window.append(now)
                self.daily[location] = used_today = used_today + 1
            headers = {
                "X-RateLimit-Limit-Daily": str(daily_max),
                "X-RateLimit-Daily-Remaining": str(max(0, daily_max - used_today)),
                "X-RateLimit-Interval-Milliseconds": str(BURST_WINDOW_MS),
                "X-RateLimit-Max": str(burst_max),
                "X-RateLimit-Remaining": str(max(0, burst_max - len(window))),
            }
            if not allowed:
                retry_after = BURST_WINDOW_MS / 1000 - (now - window[0]) if window else 1
                headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
        return allowed, headers


def new_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(20))


def epoch_ms(value: Any) -> float:
    """A filter bound: epoch milliseconds or an ISO string."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return parse_iso(str(value)).timestamp() * 1000


def date_ms(record: dict[str, Any], name: str) -> float:
    return parse_iso(record[name]).timestamp() * 1000 if record.get(name) else 0.0


def text(value: Any) -> str:
    return str(value if value is not None else "").lower()


def present(fields: tuple[str, ...], record: dict[str, Any]) -> dict[str, Any]:
    return {name: record[name] for name in fields if record.get(name) is not None}



# ---------------------------------------------------------------- the simulated account

@dataclass(frozen=True)
class Installation:
    """An OAuth app installed on a location (or, user_type Company, on an agency: its tokens
    list the agency's installed locations and mint their tokens, see ghl_agency): what its tokens may do."""

    client_id: str
    location_id: str
    scopes: tuple[str, ...]
    user_id: str
    company_id: str
    user_type: str = "Location"


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
        # An agency's (user_type Company) has "company_id" and no location; one minted from it, both.
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
        self.agencies: dict[str, Any] = {}  # company id -> ghl_agency.Agency
        self.location_mints: dict[str, int] = {}  # location id -> location tokens minted by /oauth/locationToken
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
        agency_token = grant.get("location_id") is None
        if scope.startswith("oauth.") != agency_token:  # oauth.* routes are Agency-Access-Only in oauth.json
            raise unauthorized("This route needs an agency (Company) access token" if not agency_token else
                               "An agency (Company) token cannot call location routes: use /oauth/locationToken")
        limited = grant["location_id"] or f"company {grant['company_id']}"
        allowed, headers = self.limiter.take(limited)
        request.state.rate_headers = headers
        if not allowed:
            self.state.calls[f"429 {limited}"] += 1  # per location, in /_sim/calls
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
        user_type = form.get("user_type", "Location")
        if user_type not in ("Location", "Company"):
            raise bad_request("user_type must be Location or Company")
        grants = {"authorization_code": (self.auth_codes, "code"), "refresh_token": (self.refresh_tokens,
                                                                                     "refresh_token")}
        if form["grant_type"] not in grants:
            raise bad_request(f"unsupported grant_type {form['grant_type']}")
        store, key = grants[form["grant_type"]]
        with self.state.lock:
            installation = store.get(form.get(key, ""))
            if installation is None or installation.client_id != form["client_id"]:
                raise bad_request(f"Invalid grant: {key} is invalid, expired or already used")
            if installation.user_type != user_type:
                raise bad_request(f"user_type {user_type} does not match the install (user_type "
                                  f"{installation.user_type})")
            del store[form[key]]
            return self._issue(installation)

    def _issue(self, installation: Installation) -> dict[str, Any]:
        access_token, refresh_token = secrets.token_hex(24), secrets.token_hex(24)
        company = installation.user_type == "Company"
        self.tokens[access_token] = {"location_id": None if company else installation.location_id,
                                     "scopes": list(installation.scopes),
                                     "expires_at": time.time() + self.access_token_ttl_s}
        if company:
            self.tokens[access_token]["company_id"] = installation.company_id
        self.refresh_tokens[refresh_token] = installation
        answer = {"access_token": access_token, "token_type": "Bearer", "expires_in": int(self.access_token_ttl_s),
                  "refresh_token": refresh_token, "scope": " ".join(installation.scopes),
                  "userType": installation.user_type, "companyId": installation.company_id,
                  "userId": installation.user_id}
        if company:
            return {**answer, "isBulkInstallation": True}
        return {**answer, "locationId": installation.location_id}

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
                if contact["locationId"] == location_id and text(contact.get(key)) == value.lower():
                    return contact
        return None

    def new_contact(self, location_id: str) -> dict[str, Any]:
        contact = {"id": new_id(), "locationId": location_id, "dateAdded": now_iso(), "tags": []}
        self.contacts[contact["id"]] = contact
        return contact

    def write(self, contact: dict[str, Any], body: dict[str, Any]) -> set[str]:
        """Apply contact fields (``tags`` replaces all tags, ``customFields`` only those it names,
        ``null`` clears a field); stamps
        dateUpdated; returns the changed fields."""
        if "customFields" in body:  # merged by id, kept as [{id, value}] (ghl_custom_fields)
            body = {**body, "customFields": merged_custom_fields(contact.get("customFields"), body["customFields"])}
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
        self.webhooks.emit(event_type, contact["locationId"], present(CONTACT_EVENT_FIELDS, contact))

    def emit_task(self, event_type: str, location_id: str, task: dict[str, Any]) -> None:
        self.webhooks.emit(event_type, location_id, present(TASK_EVENT_FIELDS, task))

    def emit_note(self, event_type: str, location_id: str, note: dict[str, Any]) -> None:
        self.webhooks.emit(event_type, location_id, present(NOTE_EVENT_FIELDS, note))

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
    return problems + custom_field_problems(body.get("customFields"))


def require(body: dict[str, Any], *names: str) -> None:
    if missing := [f"{name} should not be empty" for name in names if body.get(name) in (None, "")]:
        raise unprocessable(missing)


# A route decorator carrying the spec's scope and Version (harness.simulators.ghl._declare)
Register = Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]]

"""GoHighLevel API v2 simulator, following the OpenAPI specs in harness/specs/ghl.

Operations (docs/ghl_operations.md lists them against the specs): contacts (search, get,
create, upsert, update, delete), their tasks, notes, tags and appointments, the location-wide
task search, calendars and their events, ``POST /oauth/token``, and an agency's
``POST /oauth/locationToken`` and ``GET /oauth/installedLocations`` (ghl_agency.py). Each route declares its spec
``security`` scope and required ``Version`` header; a contract test holds them to the spec.

What it honours (see shared/ref/ghl/NOTES.md): Bearer tokens with scopes (static ones, or
OAuth access tokens that expire, with refresh tokens rotated on every use), the error bodies
of common/common-schemas.json, X-RateLimit-* headers with 429 above 100 requests per 10 s
(and the daily limit) per location, search filters / sort / ``searchAfter`` paging, upsert
matching by email then phone, ``dateUpdated`` stamped on contact field and tag writes, a contact's
``customFields`` merged by id (ghl_custom_fields.py), and Ed25519-signed webhooks delivered in the background. Strict mode (``strict=True``) also
validates request bodies against the spec and answers 422 as GHL does.

Admin routes (besides base.py's): ``POST /_sim/day`` (a new day, optionally a new daily limit),
``POST /_sim/oauth/clients``, ``POST /_sim/oauth/installs``, ``/_sim/agency`` (ghl_agency.py),
``POST /_sim/webhooks``, ``GET /_sim/webhooks/deliveries``, ``POST /_sim/appointments``,
``DELETE /_sim/appointments/{id}``; ``POST /_sim/faults`` also takes ``expire_tokens``,
``ignore_paging`` (searches answer their first page forever) and ``rate_headers`` (headers set on
every answer, such as a broken ``X-RateLimit-Interval-Milliseconds``).
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from harness.simulators import spec
from harness.simulators.base import error, install_common, now_iso
from harness.simulators.ghl_account import (
    API_VERSION,
    CALENDARS_VERSION,
    DEFAULT_ACCESS_TOKEN_TTL_S,
    MAX_BODY_DEPTH,
    READ,
    SCOPES,
    WRITE,
    Call,
    GHLError,
    GHLSimulator,
    Installation,
    RateLimiter,
    Register,
    bad_request,
    new_id,
    require,
    unprocessable,
    validate_contact,
)
from harness.simulators.ghl_agency import agency_admin, agency_routes, agency_faults
from harness.simulators.ghl_records import appointment_routes, note_routes, tag_routes, task_routes
from harness.simulators.ghl_search import search_contacts, search_problems

# ---------------------------------------------------------------- the app

# What the simulator's users (tests, benches, the demo) take from it: the app, its account and scopes.
__all__ = ["API_VERSION", "CALENDARS_VERSION", "DEFAULT_ACCESS_TOKEN_TTL_S", "READ", "SCOPES", "WRITE", "GHLSimulator",
           "Installation", "RateLimiter", "create_app", "new_id"]


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
        "rate_headers": lambda headers: sim.header_overrides.update({str(k): str(v) for k, v in headers.items()}),
        **agency_faults(sim)})

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
    for add_routes in (_contact_routes, task_routes, note_routes, tag_routes, appointment_routes):
        add_routes(operation, authorized, sim)
    agency_routes(operation, sim)
    _oauth_routes(app, sim)
    app.include_router(_admin_routes(sim))
    agency_admin(app, sim)
    return app


def _contact_routes(operation: Register, authorized: Any, sim: GHLSimulator) -> None:
    @operation("POST", "/contacts/search", READ)
    def search(call: Call = authorized):
        if call.body.get("locationId") != call.location_id:
            raise bad_request("locationId does not match the token's location")
        if problems := search_problems(call.body):
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

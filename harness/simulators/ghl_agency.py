"""An agency (GHL "company") in the GHL simulator: one app install for many sub-accounts (locations).

Per apps/oauth.json: the agency's token (``POST /oauth/token`` with ``user_type=Company``, its refresh
token rotated like a location's) lists where the app is installed (``GET /oauth/installedLocations``,
paged by skip/limit, filtered by ``isInstalled`` and a ``query`` on the name) and trades itself for a
location's token (``POST /oauth/locationToken``), which has the install's scopes and expires like any
access token. Both routes are Agency-Access-Only: a location token gets 401.

Uninstalling the app from a location (``PATCH /_sim/agency/locations/{id}`` with ``installed: false``)
also revokes the location tokens minted for it, as GHL's uninstall does: the next call answers 401,
and a new mint answers 400 naming the location. Each location may have its own burst and daily limit.

Admin routes: ``POST /_sim/agency`` {client_id, company_id, app_id, scopes?, user_id?, burst_max?,
daily_max? (the agency token's own limits), locations: [{id, name, address, installed, burst_max,
daily_max}], client_secret? (registers the client if new)} -> {refresh_token, code, client_id,
client_secret, app_id}; ``POST /_sim/agency/locations`` {company_id?, locations};
``PATCH /_sim/agency/locations/{id}`` {installed, burst_max, daily_max}; ``GET /_sim/agency/mints``.
``POST /_sim/faults`` also takes ``listing_without_count`` (installedLocations answers without ``count``,
which the spec does not require) and ``listing_max_limit: n`` (at most n locations a page, whatever
``limit`` asks) and ``mint_answers_location: id`` (locationToken answers name that location, a
GHL mix-up the client must refuse), each for the simulator's life.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request

from harness.simulators.base import now_iso
from harness.simulators.ghl_account import (
    API_VERSION,
    SCOPES,
    GHLSimulator,
    Installation,
    Register,
    bad_request,
    new_id,
    require,
    unprocessable,
)

AGENCY_READ, AGENCY_WRITE = "oauth.readonly", "oauth.write"
AGENCY_SCOPES = (AGENCY_READ, AGENCY_WRITE)
DEFAULT_PAGE = 20  # the spec's default limit of installedLocations


@dataclass
class AgencyLocation:
    """A sub-account of the agency, and whether the agency's app is installed on it."""

    id: str
    name: str
    address: str = ""
    installed: bool = True
    installed_at: str | None = None

    def listed(self, version_id: str) -> dict[str, Any]:
        """As InstalledLocationSchema."""
        row: dict[str, Any] = {"_id": self.id, "name": self.name, "address": self.address,
                               "isInstalled": self.installed}
        if self.installed:
            row.update(installedAt=self.installed_at, versionId=version_id)
        return row


@dataclass
class Agency:
    """A company with the app installed at agency level: its client, app and locations in order of creation."""

    client_id: str
    company_id: str
    app_id: str
    scopes: tuple[str, ...]  # what its location tokens may do
    user_id: str = "sim-agency-user"
    version_id: str = field(default_factory=new_id)
    locations: dict[str, AgencyLocation] = field(default_factory=dict)


# ---------------------------------------------------------------- what the routes do

def register(sim: GHLSimulator, body: dict[str, Any]) -> dict[str, str]:
    """An agency-level install: the agency and its locations, and the Company install's code and refresh token."""
    require(body, "client_id", "company_id")
    company_id = str(body["company_id"])
    if body["client_id"] not in sim.oauth_clients:  # an app not registered yet: registered with this install
        sim.register_client(str(body["client_id"]), str(body.get("client_secret") or secrets.token_hex(16)))
    agency = Agency(str(body["client_id"]), company_id, str(body.get("app_id") or body["client_id"].split("-")[0]),
                    tuple(body.get("scopes") or SCOPES), str(body.get("user_id") or "sim-agency-user"))
    answer = sim.install(Installation(agency.client_id, "", AGENCY_SCOPES + agency.scopes, agency.user_id, company_id,
                                      user_type="Company"))
    with sim.state.lock:
        sim.agencies[company_id] = agency
    set_limits(sim, f"company {company_id}", body)
    add_locations(sim, {"company_id": company_id, "locations": body.get("locations", [])})
    return {**answer, "client_id": agency.client_id, "client_secret": sim.oauth_clients[agency.client_id],
            "app_id": agency.app_id}


def add_locations(sim: GHLSimulator, body: dict[str, Any]) -> dict[str, int]:
    agency = _agency(sim, body.get("company_id"))
    for given in body.get("locations", []):
        require(given, "id")
        installed = bool(given.get("installed", True))
        location = AgencyLocation(str(given["id"]), str(given.get("name") or given["id"]),
                                  str(given.get("address") or ""), installed, now_iso() if installed else None)
        with sim.state.lock:
            agency.locations[location.id] = location
        set_limits(sim, location.id, given)
    return {"locations": len(agency.locations)}


def change_location(sim: GHLSimulator, location_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Uninstall (its minted tokens revoked) or reinstall the app on a location, or change its limits."""
    with sim.state.lock:
        agency = next((a for a in sim.agencies.values() if location_id in a.locations), None)
        if agency is None:
            raise bad_request(f"no agency has location {location_id}")
        location = agency.locations[location_id]
        if "installed" in body and bool(body["installed"]) != location.installed:
            location.installed = bool(body["installed"])
            location.installed_at = now_iso() if location.installed else None
            if not location.installed:
                for token in [t for t, g in sim.tokens.items() if g.get("location_id") == location_id
                              and g.get("company_id") == agency.company_id]:
                    del sim.tokens[token]
    set_limits(sim, location_id, body)
    return location.listed(agency.version_id)


def set_limits(sim: GHLSimulator, limited: str, body: dict[str, Any]) -> None:
    """Own burst and daily limits of a location (or of an agency token: "company <id>")."""
    own = {name: int(body[name]) for name in ("burst_max", "daily_max") if body.get(name) is not None}
    if own:
        with sim.limiter.lock:
            sim.limiter.overrides.setdefault(limited, {}).update(own)


def _agency(sim: GHLSimulator, company_id: Any) -> Agency:
    if company_id is None and len(sim.agencies) == 1:
        return next(iter(sim.agencies.values()))
    agency = sim.agencies.get(str(company_id))
    if agency is None:
        raise bad_request(f"no agency {company_id}: create it with POST /_sim/agency")
    return agency


def mint(sim: GHLSimulator, grant: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """``POST /oauth/locationToken``: a location token for a location of the token's company with the app installed."""
    require(form, "companyId", "locationId")
    if form["companyId"] != grant["company_id"]:
        raise bad_request(f"companyId {form['companyId']} is not the company of this token")
    location_id = form["locationId"]
    with sim.state.lock:
        agency = sim.agencies.get(grant["company_id"])
        location = agency.locations.get(location_id) if agency else None
        if location is None or not location.installed:
            raise bad_request(f"The app is not installed on location {location_id}")
        token = secrets.token_hex(24)
        sim.tokens[token] = {"location_id": location_id, "company_id": agency.company_id,
                             "scopes": list(agency.scopes), "expires_at": time.time() + sim.access_token_ttl_s}
        sim.location_mints[location_id] = sim.location_mints.get(location_id, 0) + 1
    answered = getattr(sim, "agency_fault_state", {}).get("answers_location", location_id)
    return {"access_token": token, "token_type": "Bearer", "expires_in": int(sim.access_token_ttl_s),
            "scope": " ".join(agency.scopes), "locationId": answered, "userId": agency.user_id,
            "appId": agency.app_id, "versionId": agency.version_id}


def installed_locations(sim: GHLSimulator, grant: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
    """``GET /oauth/installedLocations``: the company's locations in order of creation, filtered, one page."""
    require(query, "companyId", "appId")
    problems = [f"{name} must be a number string" for name in ("skip", "limit")
                if name in query and not query[name].isdigit()]
    problems += [f"{name} must be a boolean value" for name in ("isInstalled", "onTrial")
                 if query.get(name, "true") not in ("true", "false")]
    if problems:
        raise unprocessable(problems)
    if query["companyId"] != grant["company_id"]:
        raise bad_request(f"companyId {query['companyId']} is not the company of this token")
    agency = sim.agencies.get(grant["company_id"])
    if agency is None or query["appId"] != agency.app_id:
        raise bad_request(f"app {query['appId']} is not installed in company {query['companyId']}")
    with sim.state.lock:
        matching = [location for location in agency.locations.values()
                    if ("isInstalled" not in query or location.installed == (query["isInstalled"] == "true"))
                    and query.get("query", "").lower() in location.name.lower()
                    and query.get("locationId", location.id) == location.id]
    faults = getattr(sim, "agency_fault_state", {})
    skip, limit = int(query.get("skip", 0)), int(query.get("limit", DEFAULT_PAGE))
    limit = min(limit, faults.get("max_limit", limit))
    answer = {"locations": [location.listed(agency.version_id) for location in matching[skip:skip + limit]],
              "count": len(matching), "installToFutureLocations": False}
    if faults.get("without_count"):
        del answer["count"]
    return answer


def agency_faults(sim: GHLSimulator) -> dict[str, Any]:
    """The ``POST /_sim/faults`` actions of the agency routes (see the module doc)."""
    sim.agency_fault_state = {}

    def cap(limit: Any) -> None:
        sim.agency_fault_state["max_limit"] = int(limit)

    return {"listing_without_count": lambda on: sim.agency_fault_state.update(without_count=bool(on)),
            "listing_max_limit": cap,
            "mint_answers_location": lambda answered: sim.agency_fault_state.update(answers_location=str(answered))}


# ---------------------------------------------------------------- routes

def agency_routes(operation: Register, sim: GHLSimulator) -> None:
    """The two Agency-Access-Only operations of oauth.json, declared with their spec scope and Version."""

    def grant_of(request: Request) -> dict[str, Any]:
        extra = request.scope["route"].openapi_extra
        return sim.authorize(request, extra["security"][0]["bearer"][0], extra["x-ghl-version"])

    @operation("POST", "/oauth/locationToken", AGENCY_WRITE, version=API_VERSION)
    async def location_token(request: Request):
        grant = grant_of(request)
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise unprocessable(["body must be application/x-www-form-urlencoded"])
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
        return mint(sim, grant, form)

    @operation("GET", "/oauth/installedLocations", AGENCY_READ, version=API_VERSION)
    def installed(request: Request):
        return installed_locations(sim, grant_of(request), dict(request.query_params))


def agency_admin(app: FastAPI, sim: GHLSimulator) -> None:
    admin = APIRouter(prefix="/_sim/agency")

    @admin.post("")
    def create(body: dict[str, Any]) -> dict[str, str]:
        return register(sim, body)

    @admin.post("/locations")
    def add(body: dict[str, Any]) -> dict[str, int]:
        return add_locations(sim, body)

    @admin.patch("/locations/{location_id}")
    def change(location_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return change_location(sim, location_id, body)

    @admin.get("/mints")
    def mints() -> dict[str, int]:
        with sim.state.lock:
            return dict(sim.location_mints)

    app.include_router(admin)

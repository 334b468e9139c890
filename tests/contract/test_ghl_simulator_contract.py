"""The GHL simulator against GoHighLevel's published contract (shared/ref/ghl).

One strict simulator is driven through every operation it serves, over a real socket, into
each documented answer (success, 400, 401, and 422 where the operation takes a body); every
response body is then validated against the operation's response schema in the spec, and
every webhook it sent against its event schema in webhooks/*.md.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from harness.simulators import ghl, ghl_docs, ghl_keys, spec
from harness.simulators.base import SimState
from tests.contract.ghl_sim import LOCATION, RunningSim, running_sim, webhook_receiver

EVENT_TYPES = {"ContactCreate", "ContactUpdate", "ContactTagUpdate", "ContactDelete", "NoteCreate", "NoteUpdate",
               "NoteDelete", "TaskCreate", "TaskComplete", "TaskDelete", "AppointmentCreate", "AppointmentUpdate",
               "AppointmentDelete"}


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    status: int
    body: Any

    def operation(self) -> spec.Operation:
        return spec.find(self.method, self.path)


def recorder(log: list[Exchange]) -> Callable[[httpx.Response], None]:
    def record(response: httpx.Response) -> None:
        response.read()
        body = response.json() if response.content else None
        log.append(Exchange(response.request.method, response.request.url.path, response.status_code, body))
    return record


def served_operations() -> list[spec.Operation]:
    served = ghl_docs.routed(ghl.create_app(ghl.GHLSimulator({}, SimState())))
    return [op for op in spec.operations() if spec.template_key(op.method, op.path) in served]


def drive_contacts(api: httpx.Client) -> str:
    """Contacts, search and tags into success, 400 and 422; answers the id of the contact kept."""
    contact = api.post("/contacts/", json={"locationId": LOCATION, "firstName": "Ada", "email": "ada@example.com",
                                           "tags": ["gym"]}).json()["contact"]
    cid = contact["id"]
    api.post("/contacts/", json={"locationId": "elsewhere", "email": "x@example.com"})
    api.post("/contacts/", json={"locationId": LOCATION, "email": 5})
    api.post("/contacts/upsert", json={"locationId": LOCATION, "email": "ada@example.com", "lastName": "Lovelace"})
    api.post("/contacts/upsert", json={"locationId": "elsewhere", "email": "y@example.com"})
    api.post("/contacts/upsert", json={"email": "z@example.com"})
    api.get(f"/contacts/{cid}")
    api.get("/contacts/missing")
    api.put(f"/contacts/{cid}", json={"city": "London"})
    api.put("/contacts/missing", json={"city": "London"})
    api.put(f"/contacts/{cid}", json={"dnd": "yes"})
    api.post("/contacts/search", json={"locationId": LOCATION, "pageLimit": 10,
                                       "sort": [{"field": "dateUpdated", "direction": "desc"}]})
    api.post("/contacts/search", json={"locationId": "elsewhere"})
    api.post("/contacts/search", json={"locationId": LOCATION, "pageLimit": 501})
    for method, ok in (("POST", {"tags": ["vip", "trial"]}), ("DELETE", {"tags": ["trial"]})):
        api.request(method, f"/contacts/{cid}/tags", json=ok)
        api.request(method, "/contacts/missing/tags", json=ok)
        api.request(method, f"/contacts/{cid}/tags", json={"tags": "vip"})
    return cid


def drive_tasks_and_notes(api: httpx.Client, cid: str) -> None:
    task = api.post(f"/contacts/{cid}/tasks", json={"title": "Call back", "dueDate": "2026-12-01T10:00:00Z",
                                                    "completed": False}).json()["task"]
    api.post("/contacts/missing/tasks", json={"title": "x", "dueDate": "2026-12-01T10:00:00Z", "completed": False})
    api.post(f"/contacts/{cid}/tasks", json={"title": "no due date"})
    base = f"/contacts/{cid}/tasks/{task['id']}"
    for path in (f"/contacts/{cid}/tasks", "/contacts/missing/tasks", base, f"/contacts/{cid}/tasks/missing"):
        api.get(path)
    api.put(base, json={"body": "about the trial"})
    api.put(f"/contacts/{cid}/tasks/missing", json={"body": "x"})
    api.put(base, json={"completed": "yes"})
    api.put(base + "/completed", json={"completed": True})
    api.put(f"/contacts/{cid}/tasks/missing/completed", json={"completed": True})
    api.put(base + "/completed", json={})
    api.post(f"/locations/{LOCATION}/tasks/search", json={"contactId": [cid], "completed": True, "limit": 10})
    api.post("/locations/elsewhere/tasks/search", json={})
    api.post(f"/locations/{LOCATION}/tasks/search", json={"limit": "ten"})
    api.delete(base)
    api.delete(base)

    note = api.post(f"/contacts/{cid}/notes", json={"body": "Prefers mornings", "pinned": True}).json()["note"]
    api.post("/contacts/missing/notes", json={"body": "x"})
    api.post(f"/contacts/{cid}/notes", json={"title": "no body"})
    base = f"/contacts/{cid}/notes/{note['id']}"
    for path in (f"/contacts/{cid}/notes", "/contacts/missing/notes", base, f"/contacts/{cid}/notes/missing"):
        api.get(path)
    api.put(base, json={"body": "Prefers evenings"})
    api.put(f"/contacts/{cid}/notes/missing", json={"body": "x"})
    api.put(base, json={"pinned": "yes"})
    api.delete(base)
    api.delete(base)


def drive_appointments(sim: RunningSim, api: httpx.Client, calendars: httpx.Client, cid: str) -> None:
    booking = {"locationId": LOCATION, "contactId": cid, "calendarId": "cal1", "groupId": "grp1", "title": "Intro",
               "appointmentStatus": "confirmed", "assignedUserId": "usr1", "users": ["usr1"],
               "startTime": "2026-12-01T10:00:00.000Z", "endTime": "2026-12-01T10:30:00.000Z"}
    with sim.admin as admin:
        appointment = admin.post("/appointments", json=booking).json()
        admin.post("/appointments", json={**appointment, "appointmentStatus": "showed"})
    api.get(f"/contacts/{cid}/appointments")
    api.get("/contacts/missing/appointments")
    day = datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000
    window = {"locationId": LOCATION, "startTime": str(int(day)), "endTime": str(int(day) + 86_400_000)}
    assert len(calendars.get("/calendars/events", params={**window, "calendarId": "cal1"}).json()["events"]) == 1
    calendars.get("/calendars/events", params=window)
    assert [c["id"] for c in calendars.get("/calendars/", params={"locationId": LOCATION}).json()["calendars"]] == [
        "cal1"]
    calendars.get("/calendars/", params={"locationId": "another-location"})
    with sim.admin as admin:
        admin.delete(f"/appointments/{appointment['id']}").raise_for_status()


def drive_oauth(sim: RunningSim, log: list[Exchange]) -> None:
    with sim.admin as admin:
        client = admin.post("/oauth/clients", json={}).json()
        install = admin.post("/oauth/installs", json={"client_id": client["client_id"], "location_id": LOCATION,
                                                      "scopes": [ghl.READ]}).json()
    form = {**client, "grant_type": "authorization_code", "code": install["code"], "user_type": "Location"}
    with httpx.Client(base_url=sim.url, event_hooks={"response": [recorder(log)]}) as http:
        http.post("/oauth/token", data=form)
        http.post("/oauth/token", data=form)  # a used code: 400
        http.post("/oauth/token", data={**form, "client_secret": "wrong"})
        http.post("/oauth/token", data={"grant_type": "refresh_token"})


def drive_agency(sim: RunningSim, log: list[Exchange]) -> None:
    """An agency's token, its installed locations and a location token, into 200, 400, 401 and 422."""
    with sim.admin as admin:
        agency = admin.post("/agency", json={"client_id": "agencyapp-1", "company_id": "co1", "locations": [
            {"id": LOCATION, "name": "Gym", "address": "1 Main St"}, {"id": "gone", "name": "Old", "installed": False}]}
                            ).json()
    form = {"client_id": agency["client_id"], "client_secret": agency["client_secret"], "user_type": "Company",
            "grant_type": "refresh_token", "refresh_token": agency["refresh_token"]}
    with httpx.Client(base_url=sim.url, event_hooks={"response": [recorder(log)]}) as http:
        company = http.post("/oauth/token", data=form).json()
        headers = {"Authorization": f"Bearer {company['access_token']}", "Version": ghl.API_VERSION}
        listing = {"companyId": "co1", "appId": agency["app_id"]}
        http.get("/oauth/installedLocations", params=listing, headers=headers)
        http.get("/oauth/installedLocations", params={**listing, "isInstalled": "true", "limit": "1"}, headers=headers)
        http.get("/oauth/installedLocations", params={**listing, "appId": "another"}, headers=headers)
        http.get("/oauth/installedLocations", params={"companyId": "co1"}, headers=headers)
        location = http.post("/oauth/locationToken", data={"companyId": "co1", "locationId": LOCATION},
                             headers=headers).json()
        http.post("/oauth/locationToken", data={"companyId": "co1", "locationId": "gone"}, headers=headers)
        http.post("/oauth/locationToken", data={"companyId": "co1"}, headers=headers)
        http.post("/oauth/locationToken", data={"companyId": "co1", "locationId": LOCATION},
                  headers={**headers, "Authorization": f"Bearer {location['access_token']}"})


def drive_unauthorized(sim: RunningSim, log: list[Exchange]) -> None:
    """Every served operation with a token GHL does not know."""
    hooks = {"response": [recorder(log)]}
    for op in served_operations():
        if not op.scopes:
            continue
        path = op.path.replace("{locationId}", LOCATION)
        with sim.api(token="pit-unknown", version=op.version or ghl.API_VERSION, event_hooks=hooks) as stranger:
            stranger.request(op.method, path.replace("{", "").replace("}", ""),
                             json={} if "requestBody" in op.raw else None)


def deliveries(sim: RunningSim, expected: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    with sim.admin as admin:
        while time.monotonic() < deadline:
            delivered = admin.get("/webhooks/deliveries").json()
            if len(delivered) >= expected:
                return delivered
            time.sleep(0.05)
    pytest.fail(f"only {len(delivered)} of {expected} webhooks delivered")


@pytest.fixture(scope="module")
def driven() -> tuple[list[Exchange], list[tuple[dict[str, str], bytes]], list[dict[str, Any]]]:
    """Every exchange, every webhook request received, and the delivery log of one strict simulator."""
    log: list[Exchange] = []
    hooks = {"response": [recorder(log)]}
    with running_sim(strict=True) as sim, webhook_receiver() as receiver:
        with sim.admin as admin:
            admin.post("/webhooks", json={"url": receiver.url}).raise_for_status()
        with sim.api(event_hooks=hooks) as api, sim.api(version=ghl.CALENDARS_VERSION, event_hooks=hooks) as cal:
            cid = drive_contacts(api)
            drive_tasks_and_notes(api, cid)
            drive_appointments(sim, api, cal, cid)
            api.delete(f"/contacts/{cid}")
            api.delete(f"/contacts/{cid}")
        drive_oauth(sim, log)
        drive_agency(sim, log)
        drive_unauthorized(sim, log)
        # 1 create, 2 updates, 2 tag updates, 3 task, 3 note, 3 appointment events, 1 delete
        delivered = deliveries(sim, expected=15)
        return log, list(receiver.received), delivered


def test_every_response_body_matches_its_operation_schema_in_the_spec(driven):
    log, _, _ = driven
    problems = [f"{x.method} {x.path} -> {x.status}: {p}" for x in log
                for p in spec.response_problems(x.method, x.path, x.status, x.body)]
    assert not problems, "\n".join(problems)


def test_every_served_operation_was_driven_into_each_documented_answer(driven):
    log, _, _ = driven
    seen: dict[spec.Operation, set[int]] = {}
    for exchange in log:
        seen.setdefault(exchange.operation(), set()).add(exchange.status)
    # A 422 comes from a body the spec refuses; operations without a body have nothing to refuse.
    missing = {f"{op.method} {op.path}": sorted(wanted - seen.get(op, set())) for op in served_operations()
               if (wanted := {int(s) for s in op.raw["responses"] if s in ("200", "201", "400", "401")}
                   | ({422} if "requestBody" in op.raw and "422" in op.raw["responses"] else set()))
               - seen.get(op, set())}
    assert not missing, missing


def test_every_route_declares_the_scope_and_version_of_its_spec_operation():
    app = ghl.create_app(ghl.GHLSimulator({}, SimState()))
    declared = {spec.template_key(method, route.path): route.openapi_extra for route in app.routes
                if isinstance(route, APIRoute) and not route.path.startswith("/_sim") for method in route.methods}
    for op in served_operations():
        extra = declared[spec.template_key(op.method, op.path)]
        scopes = tuple(s for requirement in extra["security"] for values in requirement.values() for s in values)
        assert scopes == op.scopes, f"{op.method} {op.path}"
        assert extra.get("x-ghl-version") == op.version, f"{op.method} {op.path}"


def test_webhooks_cover_every_event_and_match_their_schema_in_the_spec(driven):
    _, _, delivered = driven
    assert {d["type"] for d in delivered} == EVENT_TYPES
    assert all(d["delivered"] and d["attempts"] == 1 for d in delivered)
    for delivery in delivered:
        spec.validate_webhook(delivery["body"])


def test_webhooks_are_signed_with_ed25519_over_the_raw_body(driven):
    _, received, _ = driven
    assert received
    for headers, raw in received:
        ghl_keys.public_key().verify(base64.b64decode(headers["x-ghl-signature"]), raw)  # raises if forged
        assert {"timestamp", "webhookId", "type", "locationId"} <= set(json.loads(raw))


def test_the_operations_doc_is_up_to_date():
    assert ghl_docs.DOC_PATH.read_text() == ghl_docs.render(), \
        "docs/ghl_operations.md is stale: run python -m harness.simulators.ghl_docs"

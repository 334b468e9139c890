"""The requests our GHL hook sends, checked by a strict simulator against the spec.

A strict simulator validates every request body against its operation in the spec and
answers 422 otherwise, so each hook call that succeeds here sent a body GHL documents.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from crm_sync.hooks.ghl import BearerToken, GHLClient, GHLConfig

from tests.contract.ghl_sim import LOCATION, running_sim


@pytest.fixture
def client():
    with running_sim(strict=True) as sim:
        hook = GHLClient(GHLConfig(base_url=sim.url, location_id=LOCATION, auth=BearerToken("pit-all")), page_limit=2)
        hook.max_attempts = 1
        yield hook
        hook.close()


def test_contact_search_upsert_and_update_bodies_follow_the_spec(client):
    created = client.upsert_contact({"firstName": "Ada", "email": "ada@example.com", "tags": ["gym"]})
    client.update_contact(created["id"], {"lastName": "Lovelace", "phone": "+15555550100"})
    found = list(client.search_contacts(datetime.now(UTC) - timedelta(hours=1), None))
    assert [c["id"] for c in found] == [created["id"]]


def test_task_search_and_notes_requests_follow_the_spec(client):
    contact = client.upsert_contact({"email": "bob@example.com"})
    assert list(client.search_tasks([contact["id"]], completed=False)) == []
    assert client.notes_for([contact["id"]]) == {contact["id"]: []}


def test_calendar_events_request_follows_the_spec(client):
    now = datetime.now(UTC)
    assert client.calendar_events(now - timedelta(days=1), now, calendar_id="cal1") == []


def test_appointments_come_from_each_calendar_over_time_windows_not_per_contact(client):
    start = datetime(2026, 12, 1, tzinfo=UTC)
    events = [{"id": f"appt{n}", "locationId": LOCATION, "contactId": f"c{n}", "calendarId": f"cal{n % 2}",
               "startTime": (start + timedelta(days=10 * n)).strftime("%Y-%m-%dT%H:%M:%S.000Z")} for n in range(6)]
    events.append({**events[0], "id": "elsewhere", "locationId": "another-location"})
    httpx.post(f"{client.http.base_url}/_sim/seed", json={"appointments": events}).raise_for_status()
    before = client.metrics.calls

    found = client.appointments_between(start, start + timedelta(days=60), timedelta(days=20))

    assert sorted(e["id"] for e in found) == [f"appt{n}" for n in range(6)]
    assert client.metrics.calls - before == 1 + 2 * 3  # the calendar list, then 3 windows of each calendar

"""The requests our GHL hook sends, checked by a strict simulator against the spec.

A strict simulator validates every request body against its operation in the spec and
answers 422 otherwise, so each hook call that succeeds here sent a body GHL documents.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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

"""GHLClient against the GHL simulator over real sockets: retries, refusals, pacing, no secrets in logs."""

from __future__ import annotations

import logging

import pytest
from crm_sync.hooks.ghl import BearerToken, GHLClient, GHLConfig
from crm_sync.http import ApiError

from harness.demo_data import LOCATION_ID
from tests.conftest import GHL_TOKEN

pytestmark = [pytest.mark.integration]


def client_for(sim, token: str = GHL_TOKEN) -> GHLClient:
    client = GHLClient(GHLConfig(base_url=sim.url, location_id=LOCATION_ID, auth=BearerToken(token)), page_limit=2)
    client.max_attempts = 5
    return client


def seed_contacts(sim, count: int) -> None:
    sim.seed("contacts", [{"id": f"c{i:04d}", "locationId": LOCATION_ID, "email": f"p{i}@example.com",
                           "dateAdded": "2026-11-01T00:00:00.000Z", "dateUpdated": f"2026-11-20T00:00:{i:02d}.000Z",
                           "tags": []} for i in range(count)])


def test_search_pages_with_the_search_after_cursor_and_returns_every_contact_once(ghl_sim):
    seed_contacts(ghl_sim, 5)
    client = client_for(ghl_sim)
    ids = [c["id"] for c in client.search_contacts(None, None)]
    assert ids == [f"c{i:04d}" for i in range(5)]
    assert client.metrics.calls == 3  # pages of 2, 2 and 1


def test_5xx_and_429_are_retried_and_counted(ghl_sim):
    seed_contacts(ghl_sim, 1)
    ghl_sim.admin.post("/faults", json={"statuses": [500, 503, 429]}).raise_for_status()
    client = client_for(ghl_sim)
    assert [c["id"] for c in client.search_contacts(None, None)] == ["c0000"]
    assert client.metrics.retries == 3 and client.metrics.rate_limited == 1


def test_a_422_is_not_retried_and_carries_the_record_and_ghl_message(ghl_sim):
    seed_contacts(ghl_sim, 1)
    client = client_for(ghl_sim)
    with pytest.raises(ApiError) as refused:
        client.update_contact("c0000", {"email": "not-an-email"})
    assert refused.value.status == 422 and not refused.value.retriable
    assert "/contacts/c0000" in str(refused.value) and "email must be an email" in str(refused.value)
    assert client.metrics.retries == 0 and client.metrics.calls == 1


def test_a_dropped_server_is_retried_then_reported(ghl_sim):
    client = GHLClient(GHLConfig(base_url="http://127.0.0.1:9", location_id=LOCATION_ID,
                                 auth=BearerToken(GHL_TOKEN)))
    client.max_attempts = 3
    with pytest.raises(ApiError) as failed:
        list(client.search_contacts(None, None))
    assert failed.value.status is None and failed.value.retriable
    assert client.metrics.retries == 2


def test_a_rejected_token_is_never_written_to_the_logs(ghl_sim, caplog):
    caplog.set_level(logging.DEBUG)
    seed_contacts(ghl_sim, 1)
    good, bad = client_for(ghl_sim), client_for(ghl_sim, token="pit-leaked-if-you-can-read-this")
    list(good.search_contacts(None, None))
    with pytest.raises(ApiError) as refused:
        list(bad.search_contacts(None, None))
    assert refused.value.status == 401
    logged = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records) + str(refused.value)
    assert GHL_TOKEN not in logged and "pit-leaked-if-you-can-read-this" not in logged
    assert "***" in repr(good.http.auth) and GHL_TOKEN not in repr(GHLConfig(ghl_sim.url, LOCATION_ID,
                                                                               BearerToken(GHL_TOKEN)))

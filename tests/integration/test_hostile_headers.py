"""Odd rate-limit headers from a real (simulated) GHL over real sockets cannot crash or stall a
task: every pause is capped, every unparsable header falls back to a default."""

from __future__ import annotations

import time

import pytest
from crm_sync.hooks.ghl import BearerToken, GHLClient, GHLConfig
from crm_sync.http import MAX_PAUSE_S

from harness.demo_data import LOCATION_ID
from tests.conftest import GHL_TOKEN

pytestmark = [pytest.mark.integration]


def client_for(sim) -> GHLClient:
    return GHLClient(GHLConfig(base_url=sim.url, location_id=LOCATION_ID, auth=BearerToken(GHL_TOKEN)), page_limit=2)


def search(client: GHLClient) -> None:
    client.request("POST", "/contacts/search", json={"locationId": LOCATION_ID, "pageLimit": 1}, retry=True)


def test_a_30_year_interval_pauses_at_most_the_cap_and_a_max_of_100_per_10s_is_no_crash(ghl_sim):
    faults = {"X-RateLimit-Remaining": "0", "X-RateLimit-Interval-Milliseconds": "1e12"}
    ghl_sim.admin.post("/faults", json={"rate_headers": faults}).raise_for_status()
    client = client_for(ghl_sim)
    try:
        search(client)
        assert client.limiter.paused_until - time.monotonic() <= MAX_PAUSE_S
    finally:
        client.close()
    ghl_sim.admin.post("/faults", json={"rate_headers": {"X-RateLimit-Interval-Milliseconds": "1000",
                                                         "X-RateLimit-Max": "100/10s"}}).raise_for_status()
    client = client_for(ghl_sim)
    try:
        search(client)  # paused 1000 ms / the default max of 100, not a ValueError
        assert client.limiter.paused_until - time.monotonic() <= 0.01 + 1e-3
    finally:
        client.close()


"""Local time (issue 17) against the MyGadgetRepairs simulator in New York: the day filter asks for the
shop's day, and the shop stamps its own wall-clock time. The zone rules themselves: tests/unit/test_timezones.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from crm_sync.hooks.app import AppClient

from harness.simulators import mygadgetrepairs
from harness.simulators.base import ServerThread, SimState
from tests.unit.test_timezones import MGR, NY


@pytest.fixture
def shop_in_new_york():
    with ServerThread(mygadgetrepairs.create_app("k", SimState(), zone="America/New_York")) as server:
        yield server.url + "/v1"


def test_a_day_filter_asks_for_the_shops_day_and_keeps_a_late_evening_record(shop_in_new_york):
    stamp = {"name_parts": {}, "created_date": "2026-12-01 08:00:00"}
    customers = [{"id": 1, "email": "evening@example.com", "last_updated": "2026-12-01 22:30:00", **stamp},
                 {"id": 2, "email": "before@example.com", "last_updated": "2026-12-01 21:00:00", **stamp},
                 {"id": 3, "email": "after@example.com", "last_updated": "2026-12-02 01:00:00", **stamp}]
    httpx.post(shop_in_new_york.removesuffix("/v1") + "/_sim/seed", json={"customers": customers}).raise_for_status()
    client = AppClient(shop_in_new_york, MGR.app, secret="k")
    asked = []
    client.http.event_hooks["request"].append(lambda request: asked.append(request.url.params.get("updatedDateFrom")))
    since = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)  # 22:00 on 1 December in New York: UTC's day is the 2nd
    try:
        found = [r["email"] for r in client.list_changed("contact", since, since + timedelta(hours=2), NY)]
    finally:
        client.close()
    assert asked[0] == "01-Dec-2026"
    assert found == ["evening@example.com"]  # 03:30Z is in [03:00Z, 05:00Z); 02:00Z and 06:00Z are not


def test_the_shop_simulator_stamps_its_own_local_time(shop_in_new_york):
    mgr = httpx.Client(base_url=shop_in_new_york, headers={"Authorization": "k"}, timeout=10)
    made = mgr.post("/customers", json={"email": "new@example.com"}).json()
    local = datetime.strptime(made["last_updated"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=NY)
    assert abs(local - datetime.now(UTC)) < timedelta(minutes=1)

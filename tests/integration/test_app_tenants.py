"""Many app accounts in one server (harness/simulators/tenants.py): the app client, given a base URL
with a path (``/t/<key>``), pages, looks up, reads and writes its own tenant only, and each tenant
keeps its own records and call counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from crm_sync.hooks.app import AppClient
from crm_sync.profile import profile_by_name

from harness.simulators import gymdesk, tenants
from harness.simulators.base import ServerThread
from tests.conftest import APP_KEY

pytestmark = [pytest.mark.integration]
PEOPLE = 130  # more than one page


def member(key: str, n: int, moment: datetime) -> dict:
    return {"id": f"mem_{key}{n}", "email": f"{key}.person{n}@example.com", "first_name": f"P{n}",
            "updated_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"), "created_at": "2026-11-01T00:00:00Z"}


def test_each_tenant_is_its_own_account_behind_a_base_url_with_a_path():
    start = datetime(2026, 11, 10, tzinfo=UTC)
    with ServerThread(tenants.create_app(["a", "b"], gymdesk.create_app, APP_KEY)) as server:
        for key, count in (("a", PEOPLE), ("b", 3)):
            httpx.post(f"{server.url}{tenants.tenant_path(key)}/_sim/seed", timeout=10, json={
                "members": [member(key, n, start + timedelta(minutes=n)) for n in range(count)]}).raise_for_status()
        api = AppClient(server.url + tenants.tenant_path("a"), profile_by_name("gymdesk").app, secret=APP_KEY)
        try:
            listed = [r["id"] for r in api.list_changed("contact", None, None)]
            assert sorted(listed) == sorted(f"mem_a{n}" for n in range(PEOPLE))  # every page, tenant a only
            assert api.lookup("contact", "a.person7@example.com")["id"] == "mem_a7"
            assert api.lookup("contact", "b.person1@example.com") is None
            assert api.get("contact", "mem_b1") is None
            created = api.create("contact", {"email": "new@example.com", "first_name": "New"})
        finally:
            api.close()
        b_members = httpx.get(f"{server.url}/t/b/_sim/records/members", timeout=10).json()
        a_members = httpx.get(f"{server.url}/t/a/_sim/records/members", timeout=10).json()
        a_calls = httpx.get(f"{server.url}/t/a/_sim/calls", timeout=10).json()
        b_calls = httpx.get(f"{server.url}/t/b/_sim/calls", timeout=10).json()
        all_calls = httpx.get(f"{server.url}/_sim/calls", timeout=10).json()
    assert created["id"] in {m["id"] for m in a_members} and len(a_members) == PEOPLE + 1
    assert len(b_members) == 3
    assert a_calls["GET /v1/members/{member_id}"] == 1 and a_calls["POST /v1/members"] == 1
    assert a_calls["GET /v1/members"] >= 2 + 2  # two pages or more, two lookups
    assert b_calls == {}  # admin calls are not API calls, and nothing reached b
    assert all_calls["total"] == a_calls["total"]


def test_a_tenants_faults_are_its_own_and_a_dropped_connection_reaches_the_client():
    with ServerThread(tenants.create_app(["a", "b"], gymdesk.create_app, APP_KEY)) as server:
        httpx.post(f"{server.url}/t/a/_sim/faults", json={"drops": 1, "statuses": [503]},
                   timeout=10).raise_for_status()
        headers = {"X-API-Key": APP_KEY}
        assert httpx.get(f"{server.url}/t/b/v1/members", headers=headers, timeout=10).status_code == 200
        assert httpx.get(f"{server.url}/t/a/v1/members", headers=headers, timeout=10).status_code == 503
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"{server.url}/t/a/v1/members", headers=headers, timeout=10)
        assert httpx.get(f"{server.url}/t/a/v1/members", headers=headers, timeout=10).status_code == 200

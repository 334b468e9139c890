"""Malformed API records are quarantined by a shape rule, not crashes: extract and stage run in
process against the real simulators over sockets and a real warehouse (SQLite and PostgreSQL,
whose id columns really are 128 characters). The good records of the same lists are staged."""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.extract import extract
from crm_sync.pipeline.stage import stage
from crm_sync.profile import profile_by_name
from crm_sync.warehouse import db

from tests.conftest import LOCATION_ID, connection_env

pytestmark = [pytest.mark.integration]
PAST = "2026-11-01T09:00:00Z"


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"deeper": value}
    return value


def member(member_id, **more) -> dict:
    return {"id": member_id, "email": f"m{len(str(member_id))}@example.com", "first_name": "Mem", "last_name": "Ber",
            "status": "active", "created_at": PAST, "updated_at": PAST, **more}


@pytest.fixture
def warehouse(warehouse_url, monkeypatch, tmp_path):
    monkeypatch.setenv("WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path / "home"))
    db.engine.cache_clear()
    yield db.engine()
    db.engine().dispose()
    db.engine.cache_clear()


def test_records_of_the_wrong_shape_are_quarantined_by_rule_and_the_good_ones_staged(
        warehouse, monkeypatch, ghl_sim, gymdesk_sim):
    for name, value in connection_env(ghl_sim.url, gymdesk_sim.url).items():
        monkeypatch.setenv(name, value)
    gymdesk_sim.seed("members", [member("mem_good"), member("m" * 300), member({"nested": "id"}),
                                 member("mem_deep", extra=nested(200))])
    gymdesk_sim.admin.post("/faults", json={"extra_rows": ["just a string", [1, 2], 42, [1, 2]]}).raise_for_status()
    ghl_sim.seed("contacts", [{"id": cid, "locationId": LOCATION_ID, "email": f"g{len(cid)}@example.com",
                               "dateAdded": PAST, "dateUpdated": PAST, "tags": []} for cid in ("ghlGood", "g" * 200)])
    ctx = RunContext(profile=profile_by_name("gymdesk"), run_id="manual__shape", run_type="manual")

    extract(ctx, "app")
    extract(ctx, "ghl")
    stats = stage(ctx)

    with warehouse.connect() as conn:
        rules = Counter((r.side, r.rule) for r in conn.execute(sa.text(
            "SELECT side, rule FROM quarantine WHERE entity = 'contact'")))
        children = Counter(r.rule for r in conn.execute(sa.text("SELECT rule FROM quarantine WHERE entity <> 'contact'")))
        staged = {r.source_id for r in conn.execute(sa.text("SELECT source_id FROM staging_contact"))}
        details = [r.detail for r in conn.execute(sa.text("SELECT detail FROM quarantine"))]
    assert rules == Counter({("app", "not_an_object"): 4, ("app", "id_too_long"): 1, ("app", "id_type"): 1,
                             ("app", "too_deep"): 1, ("ghl", "id_too_long"): 1})
    assert children == {"not_an_object": 12}  # the same four on the tasks, notes and bookings lists
    assert staged == {"mem_good", "ghlGood"} and stats["quarantined"] == 20  # [1, 2] twice: two rows
    assert any("300 characters" in d and "128" in d for d in details)

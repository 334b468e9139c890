"""The console's runs list counts what each run's report counts: drawn from one counts query, it
must show for every run the numbers its full report shows (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from crm_sync.pipeline.context import RunContext, log_step
from crm_sync.pipeline.report import build_report
from crm_sync.pipeline.run_list import list_runs, newest_run_ids
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.db import create, migrate
from crm_sync.warehouse.tables import quarantine, raw_record

from bench.console_runs import seed
from tests.unit.test_run_trigger import LABELS, seed_triggers

pytestmark = [pytest.mark.integration]
SHOWN = ("profile", "run_id", "timezone", "run_type", "sides", "writes_sent", "quarantined", "failed_at",
         "state", "failed_task", "retrying", "steps_done", "airflow_run", "task_ids",
         "dag_id", "interval_start", "interval_end", "dry_run", "generated_at", "finished", "title", "trigger")


@pytest.fixture
def conn(warehouse_url):
    eng = create(warehouse_url)
    migrate(eng)
    with eng.begin() as c:
        yield c
    eng.dispose()


def test_every_run_listed_has_its_reports_numbers_newest_first(conn):
    profile = profile_by_name("gymdesk")
    seeded = seed(conn, profile, 12, landed=6, writes=7)  # run 9 stops at validate
    # a manual run that stopped after extract, with rows no id names, one quarantined on both sides
    manual = RunContext(profile, "manual__2026-12-01T10:00:00+00:00", "manual")
    log_step(conn, manual, "extract", {"landed": 3, "api": {"calls": 2}}, side="app")
    raw_ids = conn.execute(sa.insert(raw_record).returning(raw_record.c.id), [
        {"profile": profile.name, "run_id": manual.run_id, "side": "app", "entity": "task", "record_key": key,
         "source_id": source_id, "payload": {"title": key}, "extracted_at": datetime.now(UTC)}
        for key, source_id in (("sha256:1", None), ("t1", "t1"), ("t2", "t2"))]).scalars().all()
    conn.execute(sa.insert(quarantine), [
        {"profile": profile.name, "run_id": manual.run_id, "side": "app", "entity": "task", "source_id": source_id,
         "rule": rule, "detail": "no title", "raw_id": raw_id, "created_at": datetime.now(UTC)}
        for raw_id, source_id, rule in ((raw_ids[0], None, "malformed"), (raw_ids[1], "t1", "malformed"),
                                        (raw_ids[1], "t1", "required"))])

    listed = list_runs(conn, profile)
    assert [r["run_id"] for r in listed] == newest_run_ids(conn, profile.name) == [manual.run_id, *seeded[::-1]]
    for row in listed:
        report = build_report(conn, profile, row["run_id"])
        assert row == {key: report[key] for key in SHOWN}, row["run_id"]
    manual_row, failed_validation = listed[0], listed[3]  # run 9 of 12 failed validate
    # no report yet and no task failed: the run is running, with the app's extract done
    assert manual_row["state"] == "running" and manual_row["failed_at"] is None and manual_row["quarantined"] == 2
    assert manual_row["steps_done"] == ["extract_gymdesk"]
    app = manual_row["sides"]["app"]  # 3 landed: 2 quarantined (one twice), 1 changed
    assert (app["extracted"], app["unchanged"], app["changed"], app["quarantined"]) == (3, 0, 1, 2)
    assert failed_validation["failed_at"] == "validate" and failed_validation["writes_sent"] == 0
    assert failed_validation["state"] == "failed"
    for row in listed:
        for side in row["sides"].values():
            assert side["extracted"] == side["unchanged"] + side["changed"] + side["quarantined"], row["run_id"]
    assert [r["run_id"] for r in list_runs(conn, profile, limit=2)] == [manual.run_id, seeded[-1]]


def test_each_runs_trigger_is_read_from_its_rows_alike_on_both_databases(conn):
    """The handoff's events (JSON) and run_log.dag_id read back the same on SQLite and PostgreSQL."""
    profile = profile_by_name("gymdesk")
    seeded = seed_triggers(conn, profile)
    listed = list_runs(conn, profile)
    assert {row["run_id"]: row["trigger"]["label"] for row in listed} == LABELS
    for row in listed:
        assert row["trigger"] == build_report(conn, profile, row["run_id"])["trigger"], row["run_id"]
    fast = listed[0]
    assert fast["run_id"] == seeded[-1] and fast["trigger"]["dag_id"] == "ghl_gymdesk_fast"
    assert fast["airflow_run"].startswith("dags/ghl_gymdesk_fast/runs/")

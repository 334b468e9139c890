"""Each run's trigger as an operator reads it in the console: the schedule (its cron and interval),
manual, backfill, or the webhook events it carried (per side, and the oldest one's age when the run
started); a fast-lane run says so and links to its own DAG in Airflow. Derived from run_log rows the
steps' own code logs (log_step, the handoff), on a real SQLite warehouse (tests/integration/
test_run_list.py holds the same on PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crm_sync.pipeline import handoff
from crm_sync.pipeline.context import RunContext, log_step
from crm_sync.pipeline.report import build_report, render
from crm_sync.pipeline.run_list import list_runs
from crm_sync.pipeline.run_trigger import duration
from crm_sync.profile import Profile, profile_by_name
from crm_sync.warehouse.tables import run_log
from crm_sync.web import security
from crm_sync.web.app import create_app

DAG, FAST = "ghl_gymdesk", "ghl_gymdesk_fast"
AT = datetime(2026, 12, 3, 9, tzinfo=UTC)
SCHEDULED = f"scheduled__{AT.isoformat()}"
MANUAL = "manual__2026-12-03T10:00:00+00:00"
BACKFILL = "backfill__2026-11-30T00:00:00+00:00"
FAST_RUN = "asset_triggered__2026-12-03T11:00:00.250000+00:00"
OLD_WEBHOOK = "asset_triggered__2026-11-20T08:00:00+00:00"  # a batch run GHL's webhooks woke, logged before 0013


def _events(ids: list[int], received: datetime | None = None, age: float | None = None) -> handoff.Handoff:
    return handoff.Handoff(webhook_events=handoff.WebhookEvents(
        ids=ids, oldest_received_at=received.isoformat() if received else None, age_at_start_s=age))


def _run(conn: sa.Connection, ctx: RunContext, finished: datetime, events: dict[str, handoff.Handoff] | None = None,
         steps: tuple[str, ...] = ("stage", "validate", "reconcile", "load", "report")) -> None:
    """A run as its steps log it: both extracts (with their handoff), then ``steps``."""
    for side in ("ghl", "app"):
        log_step(conn, ctx, "extract", {"extracted": 0, "landed": 0}, side=side)
        if events and side in events:
            handoff.record(conn, ctx, side, events[side])
    for step in steps:
        stats = {"passed": True} if step == "validate" else {}
        if step == "report":
            stats = {"interval_start": ctx.interval_start.isoformat() if ctx.interval_start else None,
                     "interval_end": ctx.interval_end.isoformat() if ctx.interval_end else None,
                     "dry_run": False, "generated_at": finished.isoformat(timespec="seconds")}
        log_step(conn, ctx, step, stats)
    conn.execute(sa.update(run_log).where(run_log.c.run_id == ctx.run_id).values(finished_at=finished))


def seed_triggers(conn: sa.Connection, profile: Profile) -> list[str]:
    """Five runs of ``profile``, one of each trigger, oldest first; returns their run ids."""
    old = RunContext(profile, OLD_WEBHOOK, "asset_triggered")  # dag_id NULL: logged before migration 0013
    _run(conn, old, AT - timedelta(days=13), {"ghl": _events([1, 2])})  # its events carry no age
    backfill = RunContext(profile, BACKFILL, "backfill", AT - timedelta(days=3, hours=9),
                          AT - timedelta(days=2, hours=9), dag_id=DAG)
    _run(conn, backfill, AT - timedelta(days=2))
    scheduled = RunContext(profile, SCHEDULED, "scheduled", AT - timedelta(days=1), AT, dag_id=DAG)
    _run(conn, scheduled, AT + timedelta(minutes=2), {"ghl": _events([3], AT - timedelta(seconds=95), 95.0)})
    manual = RunContext(profile, MANUAL, "manual", AT + timedelta(hours=1), AT + timedelta(hours=1), dag_id=DAG)
    _run(conn, manual, AT + timedelta(hours=1, minutes=1))
    fast = RunContext(profile, FAST_RUN, "asset_triggered", dag_id=FAST)  # still running: load is next
    _run(conn, fast, AT + timedelta(hours=2), {"ghl": _events([4, 5], AT + timedelta(hours=2), 3.5),
                                               "app": _events([6], AT + timedelta(hours=2), 6.25)},
         steps=("stage", "validate", "reconcile"))
    return [OLD_WEBHOOK, BACKFILL, SCHEDULED, MANUAL, FAST_RUN]


LABELS = {
    FAST_RUN: "fast lane: 3 webhook events (GHL 2, app 1), the oldest 6.2 s old at the start",
    MANUAL: "manual",
    SCHEDULED: "schedule 0 0 * * * (every 1 day), with 1 webhook event (GHL 1), the oldest 1 min 35 s old at the start",
    BACKFILL: "backfill (1 day)",
    OLD_WEBHOOK: "woken by 2 webhook events (GHL 2)",
}


@pytest.fixture
def seeded(sqlite_warehouse) -> list[str]:
    with sqlite_warehouse.begin() as conn:
        return seed_triggers(conn, profile_by_name("gymdesk"))


def test_each_run_says_what_started_it_and_the_events_it_carried(sqlite_warehouse, seeded):
    profile = profile_by_name("gymdesk")
    with sqlite_warehouse.connect() as conn:
        listed = list_runs(conn, profile)
        assert [r["run_id"] for r in listed] == seeded[::-1]
        for row in listed:  # the list's trigger is the report's, from the same rows
            assert row["trigger"] == build_report(conn, profile, row["run_id"])["trigger"], row["run_id"]
    triggers = {row["run_id"]: row["trigger"] for row in listed}
    assert {run_id: t["label"] for run_id, t in triggers.items()} == LABELS
    assert [triggers[r]["kind"] for r in seeded] == ["webhook", "backfill", "schedule", "manual", "webhook"]
    fast = triggers[FAST_RUN]
    assert fast["fast_lane"] and fast["dag_id"] == FAST and fast["event_count"] == 3 and fast["oldest_age_s"] == 6.25
    assert fast["events"]["app"] == {"count": 1, "oldest_received_at": (AT + timedelta(hours=2)).isoformat(),
                                     "age_at_start_s": 6.25}
    assert triggers[SCHEDULED]["schedule"] == "0 0 * * *" and triggers[SCHEDULED]["interval_s"] == 86400
    old = triggers[OLD_WEBHOOK]  # woken by GHL before the fast lane: the profile's own DAG, ages unknown
    assert not old["fast_lane"] and old["dag_id"] == DAG and old["oldest_age_s"] is None
    assert not any(t["fast_lane"] for run_id, t in triggers.items() if run_id != FAST_RUN)


def test_a_fast_lane_runs_links_into_airflow_name_its_own_dag(sqlite_warehouse, seeded):
    profile = profile_by_name("gymdesk")
    with sqlite_warehouse.connect() as conn:
        fast, manual = (build_report(conn, profile, run_id) for run_id in (FAST_RUN, MANUAL))
    assert fast["airflow_run"] == f"dags/{FAST}/runs/{quote(FAST_RUN, safe='')}"
    assert manual["airflow_run"] == f"dags/{DAG}/runs/{quote(MANUAL, safe='')}"
    assert fast["dag_id"] == DAG  # the console's pages stay the profile's
    exported = render(json.loads(json.dumps(fast, default=str)), "http://airflow.example")
    assert f'href="http://airflow.example/dags/{FAST}/runs/' in exported
    assert "fast lane: 3 webhook events (GHL 2, app 1), the oldest 6.2 s old at the start" in exported
    assert "(DAG <code>ghl_gymdesk_fast</code>: one task syncs the records the webhooks named)" in exported


def test_a_failed_fast_lane_step_links_the_log_of_the_lanes_one_task(sqlite_warehouse):
    from types import SimpleNamespace

    from crm_sync.pipeline.run_failed import record_failure

    profile = profile_by_name("gymdesk")
    ctx = RunContext(profile, FAST_RUN, "asset_triggered", dag_id=FAST)
    with sqlite_warehouse.begin() as conn:
        _run(conn, ctx, AT, steps=("stage",))
    # as the fast lane records a step's failure: under the step's name, in its one task
    record_failure(ctx, {"ti": SimpleNamespace(task_id="validate", try_number=1, max_tries=0)}, ValueError("bad"))
    with sqlite_warehouse.begin() as conn:
        log_step(conn, ctx, "report", {"generated_at": AT.isoformat()})
        run = list_runs(conn, profile)[0]
    assert run["state"] == "failed" and run["failed_task"]["task_id"] == "validate"
    assert run["failed_task"]["log"] == f"dags/{FAST}/runs/{quote(FAST_RUN, safe='')}/tasks/sync?try_number=1"
    assert run["task_ids"] == ["sync"]


def test_a_handoff_a_newer_crm_sync_wrote_is_named_not_read(sqlite_warehouse):
    profile = profile_by_name("gymdesk")
    with sqlite_warehouse.begin() as conn:
        ctx = RunContext(profile, MANUAL, "manual", dag_id=DAG)
        _run(conn, ctx, AT)
        conn.execute(sa.update(run_log).where(run_log.c.step == "extract", run_log.c.side == "app")
                     .values(handoff={"version": 99}))
        trigger = list_runs(conn, profile)[0]["trigger"]
    assert trigger["label"] == "manual; app events unknown (a newer crm-sync wrote this run's handoff)"


@pytest.mark.parametrize(("seconds", "shown"), [
    (0.42, "0.4 s"), (6.25, "6.2 s"), (42, "42 s"), (95, "1 min 35 s"), (3600, "1 h"), (9000, "2 h 30 min"),
    (86400, "1 day"), (3 * 86400 + 7200 + 5, "3 days 2 h")])
def test_ages_and_intervals_read_at_a_glance(seconds, shown):
    assert duration(seconds) == shown


@pytest.fixture
def client(sqlite_warehouse, monkeypatch):
    """A logged-in admin; gymdesk names its GHL location, so webhooks wake its fast lane."""
    from crm_sync.web import services

    mine = services.profiles
    monkeypatch.setattr(services, "profiles", lambda: [
        p.model_copy(update={"ghl": p.ghl.model_copy(update={"location_id": "loc1"})}) if p.name == "gymdesk" else p
        for p in mine()])
    app = create_app()
    for depends in (*security.LOGGED_IN, *security.READ_DAG, *security.READ_RUNS, *security.READ_TASK_LOGS):
        app.dependency_overrides[depends.dependency] = lambda: None
    app.dependency_overrides[security.may_read_task_logs] = lambda: True
    return TestClient(app)


def test_the_console_shows_each_runs_trigger_in_the_list_the_page_and_the_json(client, seeded):
    page = client.get(f"/dags/{DAG}").text
    for run_id, label in LABELS.items():
        assert label in page, run_id
    assert f'<a class="muted nowrap" href="/dags/{FAST}/runs/{quote(FAST_RUN, safe="")}"' in page  # its grid
    assert f'href="/dags/{FAST}">its fast lane</a>' in page
    runs = client.get(f"/api/dags/{DAG}/runs").json()["runs"]
    assert {r["run_id"]: r["trigger"]["label"] for r in runs} == LABELS
    # the UI's report tab on a fast-lane run names the fast lane's DAG: the same report
    report = client.get(f"/api/dags/{FAST}/runs/{quote(FAST_RUN, safe='')}").json()
    assert report["trigger"]["fast_lane"] and report["trigger"]["events"]["ghl"]["count"] == 2
    assert report == client.get(f"/api/dags/{DAG}/runs/{quote(FAST_RUN, safe='')}").json()
    html = client.get(f"/dags/{FAST}/runs/{quote(FAST_RUN, safe='')}").text
    assert LABELS[FAST_RUN] in html and f'href="/dags/{FAST}">the fast lane</a>' in html
    assert "GHL: 2 inbox events, the oldest received 2026-12-03 11:00 UTC." in html
    assert client.get(f"/api/dags/{DAG}_slow/runs/{quote(FAST_RUN, safe='')}").status_code == 404

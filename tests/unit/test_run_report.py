"""The report of a run that failed early still says what the run was: its type, its data interval,
the profile's threshold and every entity the profile syncs (read from a real SQLite warehouse)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.report import RunFailed, build_report, render, report
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.db import engine

RUN = "backfill__2026-11-28T00:00:00+00:00"


@pytest.fixture
def warehouse(tmp_path, monkeypatch) -> sa.Engine:
    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'warehouse.db'}")
    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path / "home"))
    engine.cache_clear()
    eng = engine()
    yield eng
    eng.dispose()
    engine.cache_clear()


def test_a_run_that_failed_at_extract_has_a_report_titled_by_its_interval(warehouse, tmp_path):
    profile = profile_by_name("gymdesk")
    ctx = RunContext(profile=profile, run_id=RUN, run_type="backfill",
                     interval_start=datetime(2026, 11, 27, tzinfo=UTC), interval_end=datetime(2026, 11, 28, tzinfo=UTC))
    with pytest.raises(RunFailed, match="stopped at extract"):
        report(ctx)  # nothing before it logged anything: extract failed

    with warehouse.connect() as conn:
        summary = build_report(conn, profile, RUN)
    assert summary["run_type"] == "backfill" and summary["failed_at"] == "extract"
    assert summary["title"] == "2026-11-27 00:00 UTC to 2026-11-28 00:00 UTC"
    assert summary["validate"]["threshold"] == profile.quality_threshold == 0.05
    assert list(summary["entities"]) == profile.synced() and summary["entities"]["contact"]["extracted_ghl"] == 0
    page = render(summary)
    assert "(backfill)" in page and "(None)" not in page and "(threshold 5%)" in page
    assert "<td>appointment</td>" in page
    exported = tmp_path / "home" / "reports" / "ghl_gymdesk" / "backfill_2026-11-27T0000_2026-11-28T0000.html"
    assert exported.read_text() == page


def test_a_manual_run_is_titled_by_its_run_id_whatever_interval_airflow_gave_it():
    from crm_sync.pipeline.report import run_title

    manual = {"run_id": "manual__2026-11-30T14:52:21+00:00", "run_type": "manual",
              "interval_start": "2026-11-29T00:00:00+00:00", "interval_end": "2026-11-30T00:00:00+00:00"}
    assert run_title(manual) == "manual__2026-11-30T14:52:21+00:00"
    assert run_title({**manual, "run_type": "scheduled"}) == "2026-11-29 00:00 UTC to 2026-11-30 00:00 UTC"


def test_a_run_where_nothing_changed_reports_what_it_read_as_unchanged(warehouse):
    """Only changed records land in raw_record; the report still counts every record read."""
    from crm_sync.pipeline.context import log_step

    profile = profile_by_name("gymdesk")
    ctx = RunContext(profile=profile, run_id="manual__2026-11-30T10:00:00+00:00", run_type="manual")
    read = {"ghl": {"contact": 52, "task": 3}, "app": {"contact": 55, "task": 8}}
    with warehouse.begin() as conn:
        for side, by_entity in read.items():
            total = sum(by_entity.values())
            log_step(conn, ctx, "extract", {"extracted": total, "landed": 0, "unchanged": total,
                                            "by_entity": by_entity, "window_mode": "watermark", "api": {}}, side=side)
        summary = build_report(conn, profile, ctx.run_id)
    assert summary["sides"]["ghl"]["extracted"] == summary["sides"]["ghl"]["unchanged"] == 55
    assert summary["sides"]["app"]["extracted"] == summary["sides"]["app"]["unchanged"] == 63
    assert summary["entities"]["contact"]["extracted_ghl"] == 52 and summary["entities"]["task"]["extracted_app"] == 8


def test_a_fast_lane_run_says_it_read_by_id_and_checked_without_great_expectations(warehouse):
    """The fast lane reads what the webhooks named (no window) and runs the declared checks by pandas:
    its report must not claim a window from the beginning, nor Great Expectations."""
    from crm_sync.pipeline.context import log_step

    profile = profile_by_name("gymdesk")
    ctx = RunContext(profile=profile, run_id="asset_triggered__2026-12-03T22:00:00+00:00", run_type="asset_triggered",
                     dag_id=profile.fast_dag_id)
    with warehouse.begin() as conn:
        for side in ("ghl", "app"):
            log_step(conn, ctx, "extract", {"extracted": 1, "landed": 1, "unchanged": 0, "by_entity": {"contact": 1},
                                            "window_mode": "named", "api": {}}, side=side)
        log_step(conn, ctx, "validate", {"validated": 2, "rows": {"staging_contact": 2}, "failed": 0, "newly_bad": 0,
                                         "bad_share": 0.0, "threshold": 0.05, "passed": True, "expectations": [],
                                         "checked_by": "pandas"})
        summary = build_report(conn, profile, ctx.run_id)
    assert summary["sides"]["ghl"]["window"] == "named by webhook events (no window)"
    page = render(summary)
    assert "The same checks, run by pandas (the fast lane), validated 2 staged rows" in page
    assert "Great Expectations validated" not in page and "[beginning" not in page


# --- Reports tell what happened (issue 23): each test below failed on the code before it. ---

def _extracted(conn, ctx, side: str, landed: int, unchanged: int) -> None:
    from crm_sync.pipeline.context import log_step

    log_step(conn, ctx, "extract", {"extracted": landed + unchanged, "landed": landed, "unchanged": unchanged,
                                    "by_entity": {"contact": landed + unchanged}, "window_mode": "watermark",
                                    "api": {"calls": 1}}, side=side)


def _land(conn, ctx, side: str, source_ids: list[str]) -> list[int]:
    from crm_sync.warehouse.tables import raw_record

    return list(conn.execute(sa.insert(raw_record).returning(raw_record.c.id), [
        {"profile": ctx.profile.name, "run_id": ctx.run_id, "side": side, "entity": "contact", "record_key": i,
         "source_id": i, "payload": {"id": i}, "extracted_at": datetime.now(UTC)} for i in source_ids]).scalars())


def _write(ctx, xref_id: int, side: str, key: str, op: str = "update") -> dict:
    return {"profile": ctx.profile.name, "run_id": ctx.run_id, "entity": "contact", "side": side, "op": op,
            "xref_id": xref_id, "target_id": f"{side}-1", "payload": {"first_name": "Ann"},
            "merged": {"first_name": "Ann"}, "decisions": [], "idempotency_key": key, "created_at": datetime.now(UTC)}


def test_a_running_run_says_running_which_steps_are_done_and_its_own_dry_run(warehouse):
    from crm_sync.pipeline.context import log_step
    from crm_sync.pipeline.run_list import list_runs

    profile = profile_by_name("gymdesk")
    assert profile.dry_run is False  # the run's own conf says dry run: the report must not fall back to this
    ctx = RunContext(profile, "manual__2026-12-03T09:00:00+00:00", "manual", dry_run=True)
    with warehouse.begin() as conn:
        _extracted(conn, ctx, "ghl", 0, 4)
        _extracted(conn, ctx, "app", 0, 2)
        log_step(conn, ctx, "stage", {"staged": 0})
        summary = build_report(conn, profile, ctx.run_id)
        listed = list_runs(conn, profile)[0]
    assert summary["state"] == listed["state"] == "running"
    assert summary["failed_at"] is None and summary["failed_task"] is None
    assert summary["steps_done"] == ["extract_ghl", "extract_gymdesk", "stage"]
    assert summary["dry_run"] is True and listed["dry_run"] is True
    page = render(summary)
    assert "The run is running" in page and "extract_ghl, extract_gymdesk, stage" in page
    assert "stopped" not in page and "No write was needed" not in page and "Bad share 0.0%" not in page
    assert "Dry run: yes" in page


def test_a_write_is_credited_to_the_run_that_sent_it_and_the_dry_run_keeps_planned_not_sent(warehouse):
    """A dry run plans a write; the next (real) run plans the same write again and sends it."""
    from crm_sync.pipeline.context import log_step
    from crm_sync.pipeline.run_list import list_runs
    from crm_sync.warehouse import outbox as box
    from crm_sync.warehouse.tables import outbox, xref

    profile = profile_by_name("gymdesk")
    dry = RunContext(profile, "manual__2026-12-03T09:00:00+00:00", "manual", dry_run=True)
    real = RunContext(profile, "manual__2026-12-03T10:00:00+00:00", "manual")
    with warehouse.begin() as conn:
        link = conn.execute(sa.insert(xref).returning(xref.c.id).values(
            profile=profile.name, entity="contact", ghl_id="ghl-1", app_id="app-1",
            updated_at=datetime.now(UTC))).scalar_one()
        for ctx in (dry, real):
            _extracted(conn, ctx, "ghl", 0, 3)
            _extracted(conn, ctx, "app", 0, 3)
            for step in ("stage", "validate", "reconcile"):
                log_step(conn, ctx, step, {})
            box.queue(conn, [_write(ctx, link, "app", "key-1")], ctx.dry_run)
            (row_id,) = conn.execute(sa.select(outbox.c.id)).scalars()
            if ctx.dry_run:
                box.mark_dry_run(conn, [row_id])
            else:
                assert box.claim(conn, row_id, ctx.run_id)
                box.mark_sent(conn, row_id, datetime.now(UTC), "app-1")
            log_step(conn, ctx, "load", {"api": {"ghl": {}, "app": {"calls": 1}}})
            log_step(conn, ctx, "report", {"dry_run": ctx.dry_run, "generated_at": "2026-12-03T10:00:00+00:00"})
            if ctx is dry:
                exported = json.loads(json.dumps(build_report(conn, profile, dry.run_id), default=str))
        dry_now, real_now = (build_report(conn, profile, ctx.run_id) for ctx in (dry, real))
        listed = {r["run_id"]: r for r in list_runs(conn, profile)}
    assert json.loads(json.dumps(dry_now, default=str)) == exported  # the console still says what the file says
    assert dry_now["dry_run"] is True and dry_now["writes_sent"] == 0
    assert dry_now["sides"]["app"]["planned"] == 1 and dry_now["sides"]["app"]["updated"] == 0
    assert [w["status"] for w in dry_now["writes"]] == ["dry_run"]
    assert real_now["writes_sent"] == 1 and real_now["sides"]["app"]["updated"] == 1
    assert [(w["status"], w["sent_by"]) for w in real_now["writes"]] == [("sent", real.run_id)]
    assert real_now["entities"]["contact"]["sent_to_app"] == 1 and dry_now["entities"]["contact"]["sent_to_app"] == 0
    for run in (dry_now, real_now):
        row = listed[run["run_id"]]
        assert row["sides"] == run["sides"] and row["writes_sent"] == run["writes_sent"]
    assert "planned, not sent" in render(dry_now) and "No write was needed" not in render(real_now)


def test_per_side_the_counts_add_up_and_the_page_shows_the_sum(warehouse):
    """The issue's run: GHL read 40 records, none changed there; a change read from the app was written
    to GHL. It showed "extracted 40, updated 1, unchanged 40": reads and writes in one row."""
    from crm_sync.pipeline.context import log_step
    from crm_sync.pipeline.run_list import list_runs
    from crm_sync.warehouse import outbox as box
    from crm_sync.warehouse.tables import outbox, quarantine, xref

    profile = profile_by_name("gymdesk")
    ctx = RunContext(profile, "manual__2026-12-03T11:00:00+00:00", "manual")
    with warehouse.begin() as conn:
        link = conn.execute(sa.insert(xref).returning(xref.c.id).values(
            profile=profile.name, entity="contact", ghl_id="ghl-1", app_id="app-1",
            updated_at=datetime.now(UTC))).scalar_one()
        _extracted(conn, ctx, "ghl", 0, 40)
        _extracted(conn, ctx, "app", 3, 7)
        raw_ids = _land(conn, ctx, "app", ["app-1", "app-2", "app-3"])
        conn.execute(sa.insert(quarantine).values(
            profile=profile.name, run_id=ctx.run_id, side="app", entity="contact", source_id="app-3",
            rule="email_format", detail="not an email", raw_id=raw_ids[2], created_at=datetime.now(UTC)))
        for step in ("stage", "validate", "reconcile"):
            log_step(conn, ctx, step, {"passed": True} if step == "validate" else {})
        box.queue(conn, [_write(ctx, link, "ghl", "key-1")], False)
        row_id = conn.execute(sa.select(outbox.c.id)).scalar_one()
        assert box.claim(conn, row_id, ctx.run_id)
        box.mark_sent(conn, row_id, datetime.now(UTC), "ghl-1")
        log_step(conn, ctx, "load", {"api": {"ghl": {"calls": 1}, "app": {}}})
        log_step(conn, ctx, "report", {"dry_run": False, "generated_at": "2026-12-03T11:00:00+00:00"})
        summary = build_report(conn, profile, ctx.run_id)
        listed = list_runs(conn, profile)[0]
    ghl, app = summary["sides"]["ghl"], summary["sides"]["app"]
    for side in (ghl, app):
        assert side["extracted"] == side["unchanged"] + side["changed"] + side["quarantined"]
    assert (ghl["extracted"], ghl["unchanged"], ghl["changed"], ghl["updated"]) == (40, 40, 0, 1)
    assert (app["extracted"], app["unchanged"], app["changed"], app["quarantined"]) == (10, 7, 2, 1)
    assert listed["sides"] == summary["sides"]
    page = render(summary)
    assert "40 = 40 unchanged + 0 changed + 0 quarantined" in page
    assert "10 = 7 unchanged + 2 changed + 1 quarantined" in page


def test_a_failed_task_leaves_its_error_where_the_report_shows_it_with_a_link_to_its_log(warehouse):
    """What the DAG's steps do when one raises (crm_sync.dag_factory._run): the error goes to run_log,
    so the console (which reads only the warehouse) names the task, shows the error and links its log."""
    from types import SimpleNamespace

    from crm_sync.paging import PagingRunaway
    from crm_sync.pipeline.run_failed import record_failure
    from crm_sync.pipeline.run_list import list_runs

    profile = profile_by_name("gymdesk")
    run_id = "manual__2026-12-03T12:00:00+00:00"
    context = {"dag_run": SimpleNamespace(run_id=run_id, run_type="manual"), "params": {"dry_run": False},
               "ti": SimpleNamespace(task_id="extract_gymdesk", try_number=3, max_tries=2)}
    ctx = RunContext.from_airflow(profile.name, context)
    with warehouse.begin() as conn:
        _extracted(conn, ctx, "ghl", 0, 5)
    error = PagingRunaway("Gymdesk contacts: page 2 brought no record not already seen")
    record_failure(ctx, context, error)
    with pytest.raises(RunFailed, match="stopped at extract"):
        report(ctx)
    with warehouse.connect() as conn:
        summary = build_report(conn, profile, run_id)
        listed = list_runs(conn, profile)[0]
    assert summary["state"] == listed["state"] == "failed" and summary["failed_at"] == listed["failed_at"] == "extract"
    failed = summary["failed_task"]
    assert failed == listed["failed_task"]
    assert failed["task_id"] == "extract_gymdesk" and failed["try_number"] == 3
    assert failed["error"] == "PagingRunaway: Gymdesk contacts: page 2 brought no record not already seen"
    assert failed["log"] == ("dags/ghl_gymdesk/runs/manual__2026-12-03T12%3A00%3A00%2B00%3A00/tasks/"
                             "extract_gymdesk?try_number=3")
    page = render(summary)
    assert "extract_gymdesk failed" in page and "page 2 brought no record not already seen" in page
    assert 'tasks/extract_gymdesk?try_number=3"' in page
    assert "Bad share 0.0%" not in page and "validate did not run" in page


def test_a_try_that_failed_is_retrying_until_the_step_logs_and_a_failure_never_hides_the_last_handoff(warehouse):
    """extract_ghl fails its first try before logging anything: the run is running with the task to be
    retried (not failed), the next run's extract still reads what the last finished extract owed, and
    once the retry logs the step the failure is gone."""
    from types import SimpleNamespace

    from crm_sync.pipeline import handoff
    from crm_sync.pipeline.run_failed import record_failure

    profile = profile_by_name("gymdesk")
    earlier = RunContext(profile, "manual__2026-12-03T08:00:00+00:00", "manual")
    owed = handoff.Handoff(owed=handoff.Owed(note=["c1"]))
    with warehouse.begin() as conn:
        _extracted(conn, earlier, "ghl", 0, 1)
        handoff.record(conn, earlier, "ghl", owed)
    run_id = "manual__2026-12-03T09:00:00+00:00"
    context = {"dag_run": SimpleNamespace(run_id=run_id, run_type="manual"), "params": {},
               "ti": SimpleNamespace(task_id="extract_ghl", try_number=1, max_tries=2)}
    ctx = RunContext.from_airflow(profile.name, context)
    record_failure(ctx, context, TimeoutError("GHL did not answer"))
    with warehouse.connect() as conn:
        assert handoff.read_last(conn, profile.name, "ghl") == owed
        summary = build_report(conn, profile, run_id)
    assert summary["state"] == "running" and summary["failed_task"] is None
    assert [(t["task_id"], t["error"], t["try_number"]) for t in summary["retrying"]] == [
        ("extract_ghl", "TimeoutError: GHL did not answer", 1)]
    assert "failed on try 1 and will be retried" in render(summary)
    with warehouse.begin() as conn:
        _extracted(conn, ctx, "ghl", 0, 1)  # the second try
        summary = build_report(conn, profile, run_id)
    assert summary["retrying"] == [] and summary["steps_done"] == ["extract_ghl"]

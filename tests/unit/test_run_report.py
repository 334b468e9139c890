"""The report of a run that failed early still says what the run was: its type, its data interval,
the profile's threshold and every entity the profile syncs (read from a real SQLite warehouse)."""

from __future__ import annotations

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

"""Which records a run extracts: its data interval (scheduled, backfill) or the watermark (manual)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from crm_sync.pipeline.context import RunContext, advance_watermark, extraction_window
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.db import create, migrate

START, END = datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)
MARK = datetime(2026, 11, 22, 6, 30, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path):
    engine = create(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(engine)
    with engine.begin() as connection:
        yield connection
    engine.dispose()


def ctx(run_type: str) -> RunContext:
    return RunContext(profile_by_name("gymdesk"), f"{run_type}__x", run_type, START, END)


def test_the_first_sync_of_a_side_reads_everything(conn):
    window = extraction_window(conn, ctx("backfill"), "ghl", "contact")
    assert (window.since, window.until, window.mode) == (None, None, "initial")


@pytest.mark.parametrize("run_type", ["scheduled", "backfill"])
def test_scheduled_and_backfill_runs_read_their_interval_widened_by_the_overlap(conn, run_type):
    advance_watermark(conn, "gymdesk", "ghl", "contact", MARK)
    window = extraction_window(conn, ctx(run_type), "ghl", "contact")
    assert window.mode == "interval"
    assert (window.since, window.until) == (START - timedelta(minutes=5), END)


@pytest.mark.parametrize("run_type", ["manual", "asset_triggered"])
def test_other_runs_continue_from_the_watermark_until_now(conn, run_type):
    advance_watermark(conn, "gymdesk", "app", "contact", MARK)
    window = extraction_window(conn, ctx(run_type), "app", "contact")
    assert window.mode == "watermark"
    assert window.since == MARK - timedelta(minutes=5) and window.until is None


def test_the_watermark_never_moves_back(conn):
    advance_watermark(conn, "gymdesk", "ghl", "contact", MARK)
    advance_watermark(conn, "gymdesk", "ghl", "contact", MARK - timedelta(days=3))
    window = extraction_window(conn, ctx("manual"), "ghl", "contact")
    assert window.since == MARK - timedelta(minutes=5)


def test_windows_from_airflow_pendulum_datetimes_stay_timezone_aware(conn):
    """Airflow passes pendulum DateTimes; the window (interval start minus the overlap) must stay
    aware, or comparing it with record timestamps fails the extract."""
    import pendulum

    advance_watermark(conn, "gymdesk", "app", "contact", MARK)
    run = RunContext(profile_by_name("gymdesk"), "backfill__x", "backfill",
                     pendulum.datetime(2026, 11, 20, tz="UTC"), pendulum.datetime(2026, 11, 21, tz="UTC"))
    window = extraction_window(conn, run, "app", "contact")
    assert window.since.tzinfo is not None and window.until.tzinfo is not None
    assert window.since == START - timedelta(minutes=5) and window.until == END


def test_a_scheduled_run_after_downtime_reads_from_the_watermark_so_skipped_intervals_are_not_lost(conn):
    behind = START - timedelta(days=2)  # the last synced interval ended two days before this one starts
    advance_watermark(conn, "gymdesk", "ghl", "contact", behind)
    window = extraction_window(conn, ctx("scheduled"), "ghl", "contact")
    assert (window.since, window.until, window.mode) == (behind - timedelta(minutes=5), END, "interval")
    backfill = extraction_window(conn, ctx("backfill"), "ghl", "contact")  # a backfill keeps to its interval
    assert backfill.since == START - timedelta(minutes=5)

"""What extract hands on survives the warehouse as written, a run logged by crm-sync before the
handoff column is read as it meant, and a handoff from an unknown release is refused by name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from crm_sync.pipeline import handoff
from crm_sync.pipeline.context import RunContext, log_step
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.tables import run_log

HANDED = handoff.Handoff(
    complete_lists={"note": ["c1", "c2"], "task": ["c1"]}, unchanged_listed={"note": ["n7"]}, task_full_scan=True,
    owed=handoff.Owed(note=["c3"], task=["c4"], appointment_from="2026-11-01T00:00:00+00:00"),
    webhook_events=handoff.WebhookEvents(ids=[4, 5], reads={"note": 1, "task": 0}, deleted_contacts=["c9"]))
# The same facts as crm-sync logged them before migration 0008: loose keys among the extract's stats.
OLD_STATS = {"extracted": 3, "landed": 1, "by_entity": {"contact": 3}, "window_mode": "watermark",
             "complete_lists": {"note": ["c1", "c2"], "task": ["c1"]}, "unchanged_listed": {"note": ["n7"]},
             "task_full_scan": True, "budget_stop": "GHL's daily budget has 5 calls left",
             "owed": {"note": ["c3"], "task": ["c4"], "appointment_from": "2026-11-01T00:00:00+00:00"},
             "inbox": {"ids": [4, 5], "reads": {"note": 1, "task": 0}, "deleted_contacts": ["c9"]}}


@pytest.fixture
def conn(tmp_path):
    with engine(f"sqlite:///{tmp_path / 'warehouse.db'}").begin() as connection:
        yield connection


def ctx(run_id: str) -> RunContext:
    return RunContext(profile=profile_by_name("gymdesk"), run_id=run_id, run_type="manual")


def logged(conn, run_id: str, stats: dict, handed: dict | None, hours_ago: float = 0) -> None:
    """An extract row as a crm-sync release would have written it (``handed`` None: before 0008)."""
    conn.execute(sa.insert(run_log).values(
        profile="gymdesk", run_id=run_id, step="extract", side="ghl", run_type="manual", stats=stats,
        handoff=handed, finished_at=datetime.now(UTC) - timedelta(hours=hours_ago)))


def test_what_extract_hands_on_is_read_back_as_written(conn):
    log_step(conn, ctx("r1"), "extract", {"extracted": 3}, side="ghl")
    handoff.record(conn, ctx("r1"), "ghl", HANDED)

    assert handoff.read(conn, ctx("r1"), "ghl") == HANDED
    assert handoff.read_last(conn, "gymdesk", "ghl") == HANDED
    assert conn.execute(sa.select(run_log.c.stats)).scalar_one() == {"extracted": 3}  # stats stay the figures
    assert handoff.read(conn, ctx("r2"), "ghl") == handoff.Handoff()  # a run whose extract logged nothing


def test_recording_before_the_extract_is_logged_fails_instead_of_losing_the_handoff(conn):
    with pytest.raises(LookupError, match="no extract of ghl logged for run r1"):
        handoff.record(conn, ctx("r1"), "ghl", HANDED)


def test_a_run_logged_before_the_handoff_column_is_read_as_it_meant(conn):
    """Upgraded mid-schedule: the next run reads what the old run owed and when it last scanned every task."""
    logged(conn, "old__1", OLD_STATS, None, hours_ago=2)

    assert handoff.read(conn, ctx("old__1"), "ghl") == HANDED
    assert handoff.read_last(conn, "gymdesk", "ghl").owed == HANDED.owed
    scanned = handoff.last_task_full_scan(conn, "gymdesk")
    assert scanned is not None and timedelta(hours=1) < datetime.now(UTC) - scanned < timedelta(hours=3)
    # An old run that stopped before its task scan ended owes nothing more, and is not a full scan.
    logged(conn, "old__2", {"extracted": 0, "inbox": {"ids": [6]}}, None, hours_ago=1)
    assert handoff.read_last(conn, "gymdesk", "ghl").owed == handoff.Owed()
    assert handoff.read(conn, ctx("old__2"), "ghl").webhook_events.ids == [6]
    assert handoff.last_task_full_scan(conn, "gymdesk") == scanned


def test_the_last_full_task_scan_is_the_latest_of_old_and_new_runs(conn):
    logged(conn, "old__1", OLD_STATS, None, hours_ago=5)
    logged(conn, "new__2", {}, HANDED.model_dump(mode="json"), hours_ago=3)
    logged(conn, "new__3", {}, handoff.Handoff().model_dump(mode="json"), hours_ago=1)

    scanned = handoff.last_task_full_scan(conn, "gymdesk")
    assert timedelta(hours=2) < datetime.now(UTC) - scanned < timedelta(hours=4)  # new__2's
    assert handoff.last_task_full_scan(conn, "another profile") is None


def test_a_handoff_of_an_unknown_version_is_refused_naming_it(conn):
    logged(conn, "future__1", {}, {**HANDED.model_dump(mode="json"), "version": 2})

    with pytest.raises(handoff.HandoffVersionError, match="version 2: this crm-sync reads version 1"):
        handoff.read(conn, ctx("future__1"), "ghl")
    with pytest.raises(handoff.HandoffVersionError, match="version None"):
        handoff.parse({"owed": {}})

"""What GHL extract spends and lands: appointments from the calendars, not per contact; task reads
that follow the changes between full scans; and nothing landed again while it stays the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from crm_sync.pipeline.context import RunContext, advance_watermark
from crm_sync.pipeline.extract import extract
from crm_sync.pipeline.stage import stage
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.tables import raw_record, run_log

from include.demo_data import LOCATION_ID
from include.simulators import ghl
from include.simulators.base import ServerThread, SimState
from tests.conftest import GHL_TOKEN, Sim, connection_env

PAST = "2026-10-01T09:00:00.000Z"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def warehouse(tmp_path, monkeypatch, ghl_sim, gymdesk_sim):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    monkeypatch.setenv("WAREHOUSE_URL", url)
    for name, value in connection_env(ghl_sim.url, gymdesk_sim.url).items():
        monkeypatch.setenv(name, value)
    engine.cache_clear()  # the task code's engine is cached per process: this test's warehouse
    yield engine()
    engine().dispose()
    engine.cache_clear()


def synced(n: int) -> None:
    """Run ``n`` staged what it read and its load finished: the next run is incremental."""
    stage(run(n))
    with engine().begin() as conn:
        for entity in ("contact", "task", "note", "appointment"):
            advance_watermark(conn, "gymdesk", "ghl", entity, datetime.now(UTC))


def run(n: int) -> RunContext:
    return RunContext(profile_by_name("gymdesk"), f"manual__{n}", "manual", None, None)


def seed(ghl_sim, people: int) -> None:
    soon = datetime.now(UTC) + timedelta(days=3)
    ghl_sim.seed("contacts", [{"id": f"c{n:05d}", "locationId": LOCATION_ID, "firstName": f"P{n}",
                               "email": f"p{n}@example.com", "dateAdded": PAST, "dateUpdated": PAST}
                              for n in range(people)])
    ghl_sim.seed("tasks", [{"id": f"t{n:05d}", "contactId": f"c{n:05d}", "title": "Call", "dueDate": PAST,
                            "completed": False, "dateAdded": PAST} for n in range(0, people, 2)])
    ghl_sim.seed("appointments", [{"id": f"a{n:05d}", "locationId": LOCATION_ID, "contactId": f"c{n:05d}",
                                   "calendarId": f"cal{n % 2}", "title": "Class", "appointmentStatus": "confirmed",
                                   "startTime": iso(soon + timedelta(days=n)), "endTime": iso(soon + timedelta(days=n))}
                                  for n in range(0, people, 3)])


def test_appointments_come_from_calendars_and_an_unchanged_run_lands_nothing(warehouse, ghl_sim):
    seed(ghl_sim, 12)

    first = extract(run(1), "ghl")
    synced(1)
    ghl_sim.reset_calls()
    second = extract(run(2), "ghl")
    calls = ghl_sim.calls()

    assert first["by_entity"]["appointment"] == 4 and first["landed"] == first["extracted"] == 12 + 6 + 4
    assert first["task_full_scan"] is True
    assert (second["extracted"], second["landed"], second["unchanged"]) == (4, 0, 4)
    with warehouse.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(raw_record).where(
            raw_record.c.run_id == "manual__2")).scalar_one() == 0
    # Only pages: the contact search, the calendar list and one window per calendar; no per-contact
    # appointment or note read, and no task read (no contact changed, the full scan is not due).
    assert {k: v for k, v in calls.items() if k != "total"} == {
        "POST /contacts/search": 1, "GET /calendars/": 1, "GET /calendars/events": 2}


def test_a_changed_payload_lands_again_and_a_run_that_never_staged_lands_it_again(warehouse, ghl_sim):
    seed(ghl_sim, 4)
    extract(run(1), "ghl")
    synced(1)
    ghl_sim.seed("contacts", [{"id": "c00001", "locationId": LOCATION_ID, "firstName": "Renamed",
                               "email": "p1@example.com", "dateAdded": PAST, "dateUpdated": iso(datetime.now(UTC))}])

    second = extract(run(2), "ghl")  # stage never ran for run 2
    assert second["landed"] == 1
    assert extract(run(3), "ghl")["landed"] == 1


def test_task_edits_on_unchanged_contacts_are_read_by_the_full_scan_when_it_is_due(warehouse, ghl_sim):
    seed(ghl_sim, 4)
    extract(run(1), "ghl")
    synced(1)
    ghl_sim.seed("tasks", [{"id": "t00000", "contactId": "c00000", "title": "Call back", "dueDate": PAST,
                            "completed": True, "dateAdded": PAST}])
    assert extract(run(2), "ghl")["landed"] == 0  # the full scan is not due yet
    with warehouse.begin() as conn:  # the last full scan was a day ago
        conn.execute(sa.update(run_log).where(run_log.c.step == "extract").values(
            finished_at=datetime.now(UTC) - timedelta(hours=24, minutes=1)))
    ghl_sim.reset_calls()

    due = extract(run(3), "ghl")

    assert due["task_full_scan"] is True and due["landed"] == 1
    assert ghl_sim.calls()["POST /locations/{location_id}/tasks/search"] == 1


def test_a_first_sync_stops_at_the_daily_reserve_and_the_next_run_reads_only_what_is_left(
        tmp_path, monkeypatch, gymdesk_sim):
    limiter = ghl.RateLimiter(daily_max=20)
    sim = ghl.GHLSimulator({GHL_TOKEN: {"location_id": LOCATION_ID, "scopes": list(ghl.SCOPES)}}, SimState(), limiter)
    with ServerThread(ghl.create_app(sim)) as server:
        small = Sim(server.url)
        for name, value in connection_env(small.url, gymdesk_sim.url).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'w.db'}")
        engine.cache_clear()
        small.seed("contacts", [{"id": f"c{n:05d}", "locationId": LOCATION_ID, "email": f"p{n}@example.com",
                                 "dateAdded": PAST, "dateUpdated": PAST} for n in range(16)])
        small.seed("notes", [{"id": f"n{n:05d}", "contactId": f"c{n:05d}", "body": f"Note {n}", "dateAdded": PAST}
                             for n in range(16)])
        profile = profile_by_name("gymdesk")
        profile = profile.model_copy(update={"ghl": profile.ghl.model_copy(update={"daily_reserve": 5})})

        first = extract(RunContext(profile, "manual__1", "manual", None, None), "ghl")
        synced(1)
        limiter.daily.clear()  # the next day
        small.reset_calls()
        second = extract(RunContext(profile, "manual__2", "manual", None, None), "ghl")
        note_reads = small.calls()["GET /contacts/{contact_id}/notes"]
        engine().dispose()
        engine.cache_clear()

    assert "below the reserve of 5" in first["budget_stop"] and 0 < len(first["notes_pending"]) < 16
    assert first["by_entity"]["note"] + second["by_entity"]["note"] == 16
    assert note_reads == len(first["notes_pending"]) and "notes_pending" not in second

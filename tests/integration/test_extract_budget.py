"""What GHL extract spends and lands: appointments from the calendars, not per contact; task reads
that follow the changes between full scans; and nothing landed again while it stays the same."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from crm_sync.pipeline import handoff
from crm_sync.pipeline.context import RunContext, advance_watermark
from crm_sync.pipeline.extract import extract
from crm_sync.pipeline.report import build_report, render
from crm_sync.pipeline.stage import stage
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.tables import raw_record, run_log

from harness.demo_data import LOCATION_ID
from harness.simulators import ghl
from harness.simulators.base import ServerThread, SimState
from tests.conftest import GHL_TOKEN, Sim, connection_env

PAST = "2026-10-01T09:00:00.000Z"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def warehouse(gymdesk_warehouse):
    return gymdesk_warehouse


def synced(n: int) -> None:
    """Run ``n`` staged what it read and its load finished: the next run is incremental."""
    stage(run(n))
    with engine().begin() as conn:
        for entity in ("contact", "task", "note", "appointment"):
            advance_watermark(conn, "gymdesk", "ghl", entity, datetime.now(UTC))


def run(n: int) -> RunContext:
    return RunContext(profile_by_name("gymdesk"), f"manual__{n}", "manual", None, None)


def handed(n: int) -> handoff.Handoff:
    """What run ``n``'s GHL extract handed on to the later steps and the next run."""
    with engine().connect() as conn:
        return handoff.read(conn, run(n), "ghl")


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
    assert handed(1).task_full_scan is True
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

    assert handed(3).task_full_scan is True and due["landed"] == 1
    assert ghl_sim.calls()["POST /locations/{location_id}/tasks/search"] == 1


@contextmanager
def small_day(tmp_path, monkeypatch, gymdesk_sim, daily_max: int):
    """A GHL simulator whose location may spend ``daily_max`` calls a day (``limiter.daily.clear()``:
    the next day), wired to a fresh warehouse."""
    limiter = ghl.RateLimiter(daily_max=daily_max)
    sim = ghl.GHLSimulator({GHL_TOKEN: {"location_id": LOCATION_ID, "scopes": list(ghl.SCOPES)}}, SimState(), limiter)
    with ServerThread(ghl.create_app(sim)) as server:
        small = Sim(server.url)
        for name, value in connection_env(small.url, gymdesk_sim.url).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'w.db'}")
        engine.cache_clear()
        try:
            yield small, limiter
        finally:
            engine().dispose()
            engine.cache_clear()


def reserving(reserve: int, page_limit: int = 500):
    profile = profile_by_name("gymdesk")
    return profile.model_copy(update={"ghl": profile.ghl.model_copy(update={"daily_reserve": reserve,
                                                                             "page_limit": page_limit})})


def loaded(n: int) -> None:
    """What load does after run ``n``: every GHL watermark moves to the end of the window extract logged."""
    stage(run(n))
    with engine().begin() as conn:
        end = conn.execute(sa.select(run_log.c.window_end).where(
            run_log.c.run_id == f"manual__{n}", run_log.c.step == "extract", run_log.c.side == "ghl")).scalar_one()
        if end is not None:
            for entity in ("contact", "task", "note", "appointment"):
                advance_watermark(conn, "gymdesk", "ghl", entity, end)


def test_a_first_sync_stops_at_the_daily_reserve_and_the_next_run_reads_only_what_is_left(
        tmp_path, monkeypatch, gymdesk_sim):
    with small_day(tmp_path, monkeypatch, gymdesk_sim, daily_max=20) as (small, limiter):
        small.seed("contacts", [{"id": f"c{n:05d}", "locationId": LOCATION_ID, "email": f"p{n}@example.com",
                                 "dateAdded": PAST, "dateUpdated": PAST} for n in range(16)])
        small.seed("notes", [{"id": f"n{n:05d}", "contactId": f"c{n:05d}", "body": f"Note {n}", "dateAdded": PAST}
                             for n in range(16)])
        profile = reserving(5)

        first = extract(RunContext(profile, "manual__1", "manual", None, None), "ghl")
        synced(1)
        limiter.daily.clear()  # the next day
        small.reset_calls()
        second = extract(RunContext(profile, "manual__2", "manual", None, None), "ghl")
        note_reads = small.calls()["GET /contacts/{contact_id}/notes"]
        owed, owed_after = handed(1).owed, handed(2).owed

    assert "down to the reserve of 5" in first["budget_stop"] and 0 < len(owed.note) < 16
    assert first["by_entity"]["note"] + second["by_entity"]["note"] == 16
    assert note_reads == len(owed.note) and owed_after == handoff.Owed()


def test_a_budget_that_runs_out_in_the_contact_search_ends_the_window_at_the_last_contact_read(
        tmp_path, monkeypatch, gymdesk_sim):
    """The stop comes before any child read: the run lands the contacts it read, owes their notes,
    leaves the task scan and the appointment range for later, and the next day goes on from the last
    contact read, reading each contact and each note once over the two days."""
    base = datetime(2026, 10, 1, 9, tzinfo=UTC)
    people = 30
    with small_day(tmp_path, monkeypatch, gymdesk_sim, daily_max=100) as (small, limiter):
        small.seed("contacts", [{"id": f"c{n:05d}", "locationId": LOCATION_ID, "email": f"p{n}@example.com",
                                 "dateAdded": PAST, "dateUpdated": iso(base + timedelta(minutes=10 * n))}
                                for n in range(people)])
        small.seed("notes", [{"id": f"n{n:05d}", "contactId": f"c{n:05d}", "body": f"Note {n}", "dateAdded": PAST}
                             for n in range(people)])
        small.seed("tasks", [{"id": f"t{n:05d}", "contactId": f"c{n:05d}", "title": "Call", "dueDate": PAST,
                              "completed": False, "dateAdded": PAST} for n in range(0, people, 3)])
        # 1 call tells the client 99 are left; 3 more reach the reserve of 96: 4 pages of 4 contacts.
        first = extract(RunContext(reserving(96, page_limit=4), "manual__1", "manual", None, None), "ghl")
        loaded(1)
        with engine().connect() as conn:
            window_end = conn.execute(sa.select(run_log.c.window_end).where(
                run_log.c.run_id == "manual__1", run_log.c.side == "ghl")).scalar_one()
            page = render(build_report(conn, reserving(96), "manual__1"))
        limiter.daily.clear()  # the next day
        small.reset_calls()
        second = extract(RunContext(reserving(0, page_limit=4), "manual__2", "manual", None, None), "ghl")
        calls = small.calls()
        first_handed, second_handed = handed(1), handed(2)

    owed = first_handed.owed
    assert "down to the reserve of 96" in first["budget_stop"]
    assert first["by_entity"] == {"contact": 16, "task": 0, "note": 0, "appointment": 0}
    assert owed == handoff.Owed(task=[], appointment_from=owed.appointment_from,
                                note=[f"c{n:05d}" for n in range(16)])
    assert first_handed.task_full_scan is False
    assert "Stopped at GHL's daily budget" in page and "the notes of 16 contacts" in page
    assert window_end.replace(tzinfo=UTC) == base + timedelta(minutes=10 * 15)  # the last contact read
    # The next day: from the last contact read (the 5-minute overlap re-reads only it), the task scan
    # and the full appointment range the first sync owes, and every contact's notes exactly once.
    assert second["by_entity"]["contact"] == people - 16 + 1
    assert second_handed.task_full_scan is True and second["by_entity"]["task"] == len(range(0, people, 3))
    assert second["appointment_range"][0] == owed.appointment_from
    assert calls["GET /contacts/{contact_id}/notes"] == people and second["by_entity"]["note"] == people
    assert second_handed.owed == handoff.Owed()


def test_a_later_run_stopped_at_the_task_search_owes_those_tasks_and_the_appointment_range(
        tmp_path, monkeypatch, gymdesk_sim):
    with small_day(tmp_path, monkeypatch, gymdesk_sim, daily_max=1000) as (small, limiter):
        seed(small, 6)
        extract(RunContext(reserving(0), "manual__1", "manual", None, None), "ghl")
        synced(1)
        edited = iso(datetime.now(UTC))
        small.seed("contacts", [{"id": "c00002", "locationId": LOCATION_ID, "firstName": "Renamed",
                                 "email": "p2@example.com", "dateAdded": PAST, "dateUpdated": edited}])
        small.seed("tasks", [{"id": "t00002", "contactId": "c00002", "title": "Call back", "dueDate": PAST,
                              "completed": True, "dateAdded": PAST}])
        used = limiter.daily[LOCATION_ID]
        # One call left above the reserve: the contact search; the task search is refused.
        profile = reserving(1000 - used - 1)
        stopped = extract(RunContext(profile, "manual__2", "manual", None, None), "ghl")
        limiter.daily.clear()  # the next day
        small.reset_calls()
        after = extract(RunContext(reserving(0), "manual__3", "manual", None, None), "ghl")
        calls = small.calls()
        owed = handed(2).owed

    assert stopped["by_entity"] == {"contact": 1, "task": 0, "note": 0, "appointment": 0}
    assert owed.task == ["c00002"] and owed.note == ["c00002"]
    assert owed.appointment_from
    # The next run reads what was owed (the contact's tasks, its notes, the appointment range) though
    # the contact did not change again, and lands the task edit.
    assert after["by_entity"]["task"] == 1 and after["landed"] >= 1
    assert calls["POST /locations/{location_id}/tasks/search"] == 1
    assert calls["GET /contacts/{contact_id}/notes"] == 1
    assert after["appointment_range"][0] == owed.appointment_from


def test_each_retry_is_charged_to_the_day_so_the_reserve_holds(ghl_sim, monkeypatch):
    """GHL counts every request, a failed one too: a call that needed three attempts spends three."""
    from crm_sync.hooks.ghl import DailyBudgetReached, GHLHook

    for name, value in connection_env(ghl_sim.url, "http://127.0.0.1:9").items():
        monkeypatch.setenv(name, value)
    client = GHLHook().get_conn(daily_reserve=199_996)
    try:
        list(client.search_contacts(None, None))  # GHL answers 199,999 left
        ghl_sim.admin.post("/faults", json={"statuses": [503, 503]}).raise_for_status()
        list(client.search_contacts(None, None))  # two 503s, then the answer: 3 of the day's calls
        assert client.metrics.retries == 2
        with pytest.raises(DailyBudgetReached, match="199996 calls left"):
            list(client.search_contacts(None, None))
    finally:
        client.close()


def test_threads_of_a_new_client_wait_for_the_first_answer_so_the_reserve_holds(ghl_sim, monkeypatch):
    """The load's lanes share one client that does not yet know the day's remaining: only the first call
    goes out blind, the others wait for its answer and then stop at the reserve (no 429 from GHL)."""
    from concurrent.futures import ThreadPoolExecutor

    from crm_sync.hooks.ghl import DailyBudgetReached, GHLHook

    for name, value in connection_env(ghl_sim.url, "http://127.0.0.1:9").items():
        monkeypatch.setenv(name, value)
    ghl_sim.admin.post("/day", json={"daily_max": 3}).raise_for_status()
    client = GHLHook().get_conn(daily_reserve=2)
    client.limiter = type(client.limiter)(1000, 100)  # no pacing: the lanes' calls would all go out at once

    def one_call(_):
        try:
            list(client.search_contacts(None, None))
            return "sent"
        except DailyBudgetReached:
            return "held"

    try:
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(one_call, range(8)))
    finally:
        client.close()
    assert sorted(outcomes) == ["held"] * 7 + ["sent"]
    assert not [route for route in ghl_sim.calls() if route.startswith("429")]

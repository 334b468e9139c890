"""What a run takes from the webhook inbox: the reads each event calls for, the contacts GHL
deleted, and events marked done only by a run whose extract handed them on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from crm_sync.pipeline import handoff, webhook_events
from crm_sync.pipeline.context import RunContext, log_step
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.tables import webhook_done, webhook_inbox

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _event(n: int, kind: str, contact: str | None, location: str = "loc1") -> dict:
    return {"webhook_id": f"wh{n}", "location_id": location, "event_type": kind, "contact_id": contact,
            "object_id": f"obj{n}", "event_at": NOW, "received_at": NOW, "routed": True, "payload": {}}


@pytest.fixture
def conn(tmp_path):
    with engine(f"sqlite:///{tmp_path / 'warehouse.db'}").begin() as connection:
        connection.execute(sa.insert(webhook_inbox), [
            _event(1, "NoteCreate", "c1"), _event(2, "TaskComplete", "c2"), _event(3, "TaskDelete", "c3"),
            _event(4, "AppointmentUpdate", "c1"), _event(5, "ContactUpdate", "c4"),
            _event(6, "ContactDelete", "c5"), _event(7, "NoteCreate", "c9", location="elsewhere")])
        yield connection


def ctx(run_id: str) -> RunContext:
    return RunContext(profile=profile_by_name("gymdesk"), run_id=run_id, run_type="asset_triggered")


def test_each_event_asks_for_the_read_it_needs_and_contact_deletes_are_kept(conn):
    work = webhook_events.pending(conn, ctx("r1"), "loc1")
    assert work.ids == [1, 2, 3, 4, 5, 6]  # not the other location's
    assert work.reads == {"note": {"c1"}, "task": {"c2", "c3"}, "appointment": {"c1"}}
    assert work.deleted_contacts == {"c5"}


def test_events_are_done_only_for_the_run_that_handed_them_on_and_never_taken_again(conn):
    first = ctx("r1")
    log_step(conn, first, "extract", {}, side="ghl")
    handoff.record(conn, first, "ghl", handoff.Handoff(
        webhook_events=webhook_events.pending(conn, first, "loc1").handed_on([])))
    conn.execute(sa.insert(webhook_inbox), [_event(8, "NoteCreate", "c1")])  # arrives during the run
    assert webhook_events.mark_done(conn, ctx("a failed run that logged nothing")) == 0
    assert webhook_events.mark_done(conn, first) == 6
    assert webhook_events.pending(conn, ctx("r2"), "loc1").ids == [8]
    assert {(r.inbox_id, r.run_id) for r in conn.execute(sa.select(webhook_done))} == {
        (i, "r1") for i in range(1, 7)}


def test_a_profile_whose_location_id_is_not_its_connections_fails_naming_both(conn):
    profile = profile_by_name("gymdesk")
    wrong = RunContext(profile=profile.model_copy(update={"ghl": profile.ghl.model_copy(
        update={"location_id": "loc2"})}), run_id="r1", run_type="scheduled")
    with pytest.raises(ValueError, match="loc2.*loc1"):
        webhook_events.pending(conn, wrong, "loc1")


def test_a_run_takes_what_the_receiver_stored_and_nothing_of_an_unrouted_location(tmp_path):
    from tests.unit.test_webhook_receiver import LOCATION, Receiver, event, signed

    receiver = Receiver(tmp_path, f"sqlite:///{tmp_path / 'receiver.db'}")
    assert receiver.post(*signed(event(contactId="c1"))).status_code == 200
    assert receiver.post(*signed(event(locationId="elsewhere", contactId="c2"))).status_code == 202
    with receiver.engine.connect() as conn:
        assert webhook_events.pending(conn, ctx("r1"), LOCATION).reads["note"] == {"c1"}
        assert webhook_events.pending(conn, ctx("r1"), "elsewhere").ids == []


def _app_event(n: int, entity: str, record: str, profile: str = "gymdesk", received=NOW) -> dict:
    return {**_event(100 + n, f"{entity}.updated", record), "webhook_id": f"app:{profile}:{n}",
            "source": f"app:{profile}", "entity": entity, "object_id": record, "received_at": received}


def test_the_apps_events_name_its_records_per_entity_and_are_done_with_the_ghl_ones(conn):
    from datetime import timedelta

    later = NOW + timedelta(minutes=5)
    conn.execute(sa.insert(webhook_inbox), [
        _app_event(1, "contact", "m1"), _app_event(2, "task", "t1"), _app_event(3, "contact", "m1"),
        _app_event(4, "contact", "m9", profile="gymflow"), _app_event(5, "invoice", "i1"),
        _app_event(6, "note", "n1", received=later)])
    run = ctx("r1")
    ghl = webhook_events.pending(conn, run, "loc1")
    assert ghl.ids == [1, 2, 3, 4, 5, 6] and ghl.contacts == {"c1", "c2", "c3", "c4", "c5"}  # GHL's only
    app = webhook_events.pending_app(conn, run, before=NOW)
    assert app.records == {"contact": {"m1"}, "task": {"t1"}}  # an entity not synced: used, read by nothing
    assert len(app.ids) == 4  # not gymflow's, nor the note received after the window
    on = app.handed_on([], started_at=NOW + timedelta(seconds=7))
    assert on.oldest_received_at == NOW.isoformat() and on.age_at_start_s == 7.0
    log_step(conn, run, "extract", {}, side="ghl")
    handoff.record(conn, run, "ghl", handoff.Handoff(webhook_events=ghl.handed_on([])))
    log_step(conn, run, "extract", {}, side="app")
    handoff.record(conn, run, "app", handoff.Handoff(webhook_events=app.handed_on([])))
    assert webhook_events.mark_done(conn, run) == 10
    assert webhook_events.pending_app(conn, ctx("r2")).records == {"note": {"n1"}}


def test_a_run_capped_at_some_records_takes_the_oldest_events_and_leaves_the_rest_pending(conn):
    """A bulk import is read over several fast runs: each takes the oldest events naming at most
    ``max_records`` records (another event of a record it reads rides along), and the others are not
    marked done, so the next run takes them."""
    conn.execute(sa.insert(webhook_inbox), [
        _app_event(1, "contact", "m1"), _app_event(2, "contact", "m2"), _app_event(3, "contact", "m1"),
        _app_event(4, "invoice", "i1"), _app_event(5, "contact", "m3"), _app_event(6, "task", "t1")])
    first = ctx("r1")
    ghl = webhook_events.pending(conn, first, "loc1", max_records=4)
    assert ghl.ids == [1, 2, 3, 4, 5] and ghl.contacts == {"c1", "c2", "c3", "c4"} and ghl.left_pending == 1
    app = webhook_events.pending_app(conn, first, max_records=2)
    assert app.records == {"contact": {"m1", "m2"}} and len(app.ids) == 4 and app.left_pending == 2
    for side, events in (("ghl", ghl), ("app", app)):
        log_step(conn, first, "extract", {}, side=side)
        handoff.record(conn, first, side, handoff.Handoff(webhook_events=events.handed_on([])))
    assert webhook_events.mark_done(conn, first) == 9
    assert webhook_events.pending(conn, ctx("r2"), "loc1").ids == [6]  # ContactDelete c5: past the cap
    rest = webhook_events.pending_app(conn, ctx("r2"), max_records=2)
    assert rest.records == {"contact": {"m3"}, "task": {"t1"}} and rest.left_pending == 0

"""The GHL webhook receiver in a real warehouse (the SQLite default and PostgreSQL): an event is stored
once and wakes the location's DAGs; an unrouted one is only counted; a location past its caps gets 429
and nothing is stored; the receiver prunes expired events with no profile run; migration 0009 counts
and deletes the events stored unrouted before it. What it refuses and never logs:
tests/unit/test_webhook_receiver.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from crm_sync.profile import location_asset
from crm_sync.warehouse.db import MIGRATIONS, create, migrate
from crm_sync.warehouse.tables import metadata, webhook_done, webhook_inbox, webhook_unrouted

from tests.unit.test_webhook_receiver import LOCATION, SECRET_LOOKING, Receiver, event, signed


def test_a_signed_event_is_stored_once_and_wakes_the_locations_dags(tmp_path, warehouse_url):
    receiver = Receiver(tmp_path, warehouse_url)
    body = event()
    raw, headers = signed(body)
    answer = receiver.post(raw, headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "stored", "profiles": ["gymdesk"]}
    rows = receiver.rows()
    assert [(r.webhook_id, r.event_type, r.contact_id, r.object_id, r.routed, r.payload_bytes) for r in rows] == \
        [(body["webhookId"], "NoteCreate", "contact1", "note1", True, len(raw))]
    assert rows[0].payload == body
    # GHL redelivers: answered 200, not stored (so not processed) again.
    again = receiver.post(raw, headers)
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert len(receiver.rows()) == 1
    deadline = time.monotonic() + 5
    while not receiver.woken and time.monotonic() < deadline:
        time.sleep(0.01)
    assert receiver.woken == [location_asset(LOCATION)]


def test_an_unrouted_event_is_counted_and_its_payload_is_in_no_table(tmp_path, warehouse_url):
    receiver = Receiver(tmp_path, warehouse_url)
    for _ in range(3):
        assert receiver.post(*signed(event(locationId="not-ours"))).status_code == 202
    assert receiver.rows() == [] and receiver.unrouted() == [("not-ours", "NoteCreate", 3)]
    with receiver.engine.connect() as conn:
        everything = repr([conn.execute(sa.select(table)).all() for table in metadata.sorted_tables])
    assert SECRET_LOOKING not in everything and "contact1" not in everything


def test_past_a_cap_the_answer_is_429_and_nothing_is_stored(tmp_path, warehouse_url):
    receiver = Receiver(tmp_path, warehouse_url, max_events_per_minute=2)
    assert [receiver.post(*signed(event())).status_code for _ in range(3)] == [200, 200, 429]
    size = len(signed(event())[0])
    full = Receiver(tmp_path, warehouse_url, max_stored_bytes=size * 3)  # the same inbox: 2 stored already
    over = full.post(*signed(event(body="longer " * 50)))
    assert over.status_code == 429 and over.headers["Retry-After"] == "600"
    assert len(full.rows()) == 2


def test_the_receiver_prunes_expired_events_with_no_profile_run(tmp_path, warehouse_url):
    receiver = Receiver(tmp_path, warehouse_url)
    old = datetime.now(UTC) - timedelta(days=91)
    with receiver.engine.begin() as conn:
        for n, location in enumerate((LOCATION, "gone-profile")):
            conn.execute(sa.insert(webhook_inbox).values(
                id=100 + n, webhook_id=f"old{n}", location_id=location, event_type="NoteCreate", event_at=old,
                received_at=old, routed=True, payload={"body": SECRET_LOOKING}, payload_bytes=40))
            conn.execute(sa.insert(webhook_done).values(profile="gymdesk", inbox_id=100 + n, run_id="r", done_at=old))
    body = event()
    assert receiver.post(*signed(body)).status_code == 200
    assert [r.webhook_id for r in receiver.rows()] == [body["webhookId"]]
    with receiver.engine.connect() as conn:
        assert conn.execute(sa.select(webhook_done)).all() == []


def test_migration_0009_counts_and_deletes_the_events_stored_unrouted(warehouse_url):
    engine = create(warehouse_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0008_run_log_handoff")
    moment = datetime(2026, 11, 30, 12, tzinfo=UTC)
    rows = [("ours", "NoteCreate", True), ("theirs", "NoteCreate", False), ("theirs", "NoteCreate", False),
            ("theirs", "TaskCreate", False)]
    payload = '{"body": "' + SECRET_LOOKING + '"}'
    inbox = sa.table("webhook_inbox", *(sa.column(c) for c in (
        "id", "webhook_id", "location_id", "event_type", "event_at", "received_at", "routed", "payload")))
    with engine.begin() as conn:
        for n, (location, kind, routed) in enumerate(rows):
            conn.execute(sa.insert(inbox).values(id=n + 1, webhook_id=f"w{n}", location_id=location, event_type=kind,
                                                 event_at=moment, received_at=moment + timedelta(hours=n),
                                                 routed=routed, payload=sa.literal(payload)))
            conn.execute(sa.insert(webhook_done).values(profile="p", inbox_id=n + 1, run_id="r", done_at=moment))
    migrate(engine)
    with engine.connect() as conn:
        assert [(r.webhook_id, r.payload_bytes) for r in conn.execute(sa.select(webhook_inbox))] == \
            [("w0", len(payload))]
        assert [r.inbox_id for r in conn.execute(sa.select(webhook_done))] == [1]
        counts = [(r.location_id, r.event_type, r.count, r.first_seen, r.last_seen) for r in conn.execute(
            sa.select(webhook_unrouted).order_by(webhook_unrouted.c.event_type))]
    assert counts == [("theirs", "NoteCreate", 2, moment + timedelta(hours=1), moment + timedelta(hours=2)),
                      ("theirs", "TaskCreate", 1, moment + timedelta(hours=3), moment + timedelta(hours=3))]
    engine.dispose()

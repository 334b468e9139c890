"""The receiver prunes expired inbox events itself, without a profile's run: each location by the
longest retention_days of the profiles naming it, other locations by the longest of all, at most
once per interval per process, in bounded batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from crm_sync.warehouse.tables import webhook_done, webhook_inbox, webhook_unrouted
from crm_sync.webhooks import retention

from tests.unit.test_webhook_receiver import LOCATION, Receiver, event, signed, write_profile

NOW = datetime.now(UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def seed(receiver: Receiver, rows: list[tuple[str, float]], unrouted: list[tuple[str, float]] = ()) -> None:
    """Inbox events (location, age in days) named ``w<n>``, each marked done by a run; unrouted counts."""
    with receiver.engine.begin() as conn:
        start = conn.scalar(sa.select(sa.func.count()).select_from(webhook_inbox))
        for n, (location, age) in enumerate(rows, start):
            inbox_id = conn.execute(sa.insert(webhook_inbox).values(
                webhook_id=f"w{n}", location_id=location, event_type="ContactUpdate", contact_id="c",
                event_at=days_ago(age), received_at=days_ago(age), routed=True, payload={"n": n},
                payload_bytes=9)).inserted_primary_key[0]
            conn.execute(sa.insert(webhook_done).values(profile="gymdesk", inbox_id=inbox_id, run_id="r",
                                                        done_at=days_ago(age)))
        for location, age in unrouted:
            conn.execute(sa.insert(webhook_unrouted).values(location_id=location, event_type="NoteCreate", count=3,
                                                            first_seen=days_ago(age), last_seen=days_ago(age)))


def left(receiver: Receiver) -> tuple[set, set, set]:
    with receiver.engine.connect() as conn:
        inbox = {(r.location_id, r.webhook_id) for r in conn.execute(sa.select(webhook_inbox))}
        done = {r.inbox_id for r in conn.execute(sa.select(webhook_done))}
        ids = {r.id for r in conn.execute(sa.select(webhook_inbox.c.id))}
        counts = {r.location_id for r in conn.execute(sa.select(webhook_unrouted))}
    assert done <= ids  # a done mark goes with its event
    return inbox, done, counts


@pytest.fixture
def receiver(tmp_path) -> Receiver:
    receiver = Receiver(tmp_path, f"sqlite:///{tmp_path / 'warehouse.db'}", prune_interval_s=600)
    write_profile(receiver.profiles, "gist", "loc-forever", retention_days=None)
    write_profile(receiver.profiles, "gymflow", "loc-short", retention_days=10)
    write_profile(receiver.profiles, "mygadgetrepairs", "loc-short", retention_days=20)  # its longest: 20
    return receiver


def test_any_answer_prunes_expired_events_by_their_locations_retention_with_no_run(receiver):
    seed(receiver, [(LOCATION, 91), (LOCATION, 89), ("loc-forever", 400), ("loc-short", 21), ("loc-short", 19),
                    ("nobody-now", 91), ("nobody-now", 89)], unrouted=[("stranger", 91), ("stranger-2", 1)])
    answer = receiver.post(*signed(event(locationId="stranger-3")))  # an answer that stores nothing
    assert answer.status_code == 202
    inbox, _, counts = left(receiver)
    assert inbox == {(LOCATION, "w1"), ("loc-forever", "w2"), ("loc-short", "w4"), ("nobody-now", "w6")}
    assert counts == {"stranger-2", "stranger-3"}  # counts last seen before the longest retention go too


def test_webhook_retention_days_caps_every_locations_retention(tmp_path):
    receiver = Receiver(tmp_path, f"sqlite:///{tmp_path / 'warehouse.db'}", retention_days=30)
    write_profile(receiver.profiles, "gist", "loc-forever", retention_days=None)
    seed(receiver, [(LOCATION, 31), (LOCATION, 29), ("loc-forever", 31), ("nobody-now", 31)])
    body = event()
    assert receiver.post(*signed(body)).status_code == 200
    assert left(receiver)[0] == {(LOCATION, "w1"), (LOCATION, body["webhookId"])}


def test_pruning_runs_at_most_once_per_interval_in_a_process(receiver):
    clock = [1000.0]
    receiver.target.pruner.clock = lambda: clock[0]
    receiver.post(*signed(event()))  # the first answer prunes
    seed(receiver, [(LOCATION, 91)])
    receiver.post(*signed(event()))
    assert (LOCATION, "w1") in left(receiver)[0]  # within the interval: not pruned again
    clock[0] += 601
    receiver.post(*signed(event()))
    assert (LOCATION, "w1") not in left(receiver)[0]


def test_a_prune_deletes_a_bounded_number_of_rows_and_the_next_one_goes_on(receiver, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 2)
    monkeypatch.setattr(retention, "BATCHES", 2)
    seed(receiver, [(LOCATION, 91)] * 5)
    pruner = receiver.target.pruner
    assert pruner.maybe_prune() == 4
    assert pruner.maybe_prune() is None  # not due
    pruner._next = float("-inf")
    assert pruner.maybe_prune() == 1 and left(receiver)[0] == set()


def test_a_failed_prune_is_logged_and_the_answer_stands(receiver, monkeypatch, caplog):
    def broken(*_):
        raise sa.exc.OperationalError("DELETE", {}, Exception("database is locked"))

    monkeypatch.setattr(retention, "prune", broken)
    assert receiver.post(*signed(event())).status_code == 200
    assert "pruning the webhook inbox failed" in caplog.text


def test_a_quiet_receiver_prunes_too_every_interval_with_no_webhook_and_no_run(receiver):
    import time

    from crm_sync.web.routes.receiver import prune_while_quiet

    seed(receiver, [(LOCATION, 91), (LOCATION, 89)])
    receiver.target.pruner.interval_s = 0.05
    stop = prune_while_quiet(lambda: receiver.target, interval_s=0.05)
    deadline = time.monotonic() + 10
    while len(left(receiver)[0]) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    assert left(receiver)[0] == {(LOCATION, "w1")}  # the 91-day-old event went; no request, no run


def test_the_quiet_pruner_outlives_a_failure_and_prunes_at_the_next_interval(receiver, caplog):
    """A warehouse that fails once (busy, being migrated) must not end the pruning thread for good."""
    import time

    from crm_sync.web.routes.receiver import prune_while_quiet

    seed(receiver, [(LOCATION, 91), (LOCATION, 89)])
    receiver.target.pruner.interval_s = 0.05
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the warehouse is being migrated")
        return receiver.target

    stop = prune_while_quiet(flaky, interval_s=0.05)
    deadline = time.monotonic() + 10
    while len(left(receiver)[0]) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    assert left(receiver)[0] == {(LOCATION, "w1")}
    assert "pruning the webhook inbox failed" in caplog.text

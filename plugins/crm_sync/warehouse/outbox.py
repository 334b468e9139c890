"""The outbox's state transitions, each in one place, and the one rule of a superseded write.

A row is born ``pending`` (or ``dry_run`` in a dry run) by reconcile's ``queue``; load claims it
(``pending`` -> ``sending``, a conditional update: the exactly-once send) and ends it ``sent``,
``failed`` (refused, or a dead letter) or ``pending`` again (transient, or waiting for its contact);
a crash between claim and result leaves ``sending``, which the next load releases. Operators move
rows with the CLI (``retry`` to ``pending``, ``discard`` to ``discarded``); a review undo drops a
link's unsent writes. A write is ``superseded`` when a newer write of the same record and side
exists: sending it would put its old payload over the newer data.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crm_sync.warehouse.ops import insert_ignore
from crm_sync.warehouse.tables import outbox

UNSENT = ("pending", "dry_run")  # planned, never claimed: a newer write may still replace them
KEYS_PER_QUERY = 10_000  # SQLite's bind limit


def _same_record(rows: Any, profile: Any, entity: Any, side: Any, xref_id: Any) -> sa.ColumnElement[bool]:
    """Writes of one record to one side. Template tasks planned by an older version (xref 0) have
    no record yet, so they are never the same record as anything."""
    return (rows.c.profile == profile) & (rows.c.entity == entity) & (rows.c.side == side) \
        & (rows.c.xref_id == xref_id) & (rows.c.xref_id != 0)


def superseded() -> sa.ColumnElement[bool]:
    """The superseded rule as a condition on ``outbox`` rows: a newer write (a higher id, not
    discarded) of the same record and side exists."""
    newer = outbox.alias("newer")
    return sa.exists().where(_same_record(newer, outbox.c.profile, outbox.c.entity, outbox.c.side, outbox.c.xref_id),
                             newer.c.id > outbox.c.id, newer.c.status != "discarded")


def queue(conn: sa.Connection, rows: list[dict[str, Any]], dry_run: bool) -> None:
    """Add the writes reconcile planned, each as the planner made it (``before``, what it replaces on
    its target, included: NULL for a create); an older unsent write for the same record and side is
    superseded. A write first planned in a dry run (same key) becomes due when this run is not one."""
    for row in rows:
        if row["xref_id"]:
            conn.execute(sa.update(outbox).where(
                _same_record(outbox, row["profile"], row["entity"], row["side"], row["xref_id"]),
                outbox.c.status.in_(UNSENT), outbox.c.idempotency_key != row["idempotency_key"],
            ).values(status="superseded"))
    insert_ignore(conn, outbox, rows, keys=["idempotency_key"])
    keys = [row["idempotency_key"] for row in rows]
    if keys and not dry_run:
        conn.execute(sa.update(outbox).where(outbox.c.idempotency_key.in_(keys), outbox.c.status == "dry_run")
                     .values(status="pending"))


def xref_ids_by_key(conn: sa.Connection, keys: Sequence[str]) -> dict[str, int]:
    """The link of each write already in the outbox, by idempotency key (keys not there are left out)."""
    return {key: xref_id for chunk in range(0, len(keys), KEYS_PER_QUERY)
            for key, xref_id in conn.execute(sa.select(outbox.c.idempotency_key, outbox.c.xref_id).where(
                outbox.c.idempotency_key.in_(keys[chunk:chunk + KEYS_PER_QUERY])))}


def supersede_link(conn: sa.Connection, xref_id: int) -> None:
    """A contact link is dropped (a review decision undone): its unsent writes are superseded."""
    conn.execute(sa.update(outbox).where(outbox.c.xref_id == xref_id, outbox.c.entity == "contact",
                                         outbox.c.status.in_(UNSENT)).values(status="superseded"))


def release_stuck(conn: sa.Connection, profile: str) -> None:
    """A crash between claim and result leaves ``sending``: back to ``pending``. A resend first looks
    up what the first send may have created (GHL upsert, GHL child lookup, app email lookup)."""
    conn.execute(sa.update(outbox).where(outbox.c.profile == profile, outbox.c.status == "sending")
                 .values(status="pending"))


def due(conn: sa.Connection, profile: str) -> list[sa.Row]:
    """The profile's pending rows, in outbox order."""
    return conn.execute(sa.select(outbox).where(outbox.c.profile == profile, outbox.c.status == "pending")
                        .order_by(outbox.c.id)).all()


def planned_in_run(conn: sa.Connection, xref_id: int, run_id: str, side: str) -> bool:
    """The run planned a write of the link to ``side`` (whatever became of it)."""
    return conn.execute(sa.select(outbox.c.id).where(
        outbox.c.xref_id == xref_id, outbox.c.run_id == run_id, outbox.c.side == side)).first() is not None


def mark_dry_run(conn: sa.Connection, ids: Sequence[int]) -> None:
    """A dry run's load sends nothing: its rows wait as ``dry_run`` until a real run plans them again."""
    conn.execute(sa.update(outbox).where(outbox.c.id.in_(list(ids))).values(status="dry_run"))


def claim(conn: sa.Connection, row_id: int, run_id: str) -> bool:
    """``pending`` -> ``sending``, counting the attempt; True only for the one caller that moved it,
    so two runs can never send a row both. The claiming run is the one the send is credited to
    (``sent_run_id``): a dry run plans a write, the run that sends it may be a later one."""
    claimed = conn.execute(sa.update(outbox).where(outbox.c.id == row_id, outbox.c.status == "pending")
                           .values(status="sending", attempts=outbox.c.attempts + 1, sent_run_id=run_id))
    return claimed.rowcount == 1


def unclaim(conn: sa.Connection, row_id: int, why: str, sent_run_id: str | None) -> None:
    """``sending`` -> ``pending``, its attempt not counted: the write never went out (the run stopped
    before it, e.g. the GHL location refused a token), so it is neither a retry nor a dead letter.
    ``sent_run_id`` is the row's before the claim (NULL: never tried), put back: the claiming run did
    not try it."""
    conn.execute(sa.update(outbox).where(outbox.c.id == row_id, outbox.c.status == "sending")
                 .values(status="pending", attempts=outbox.c.attempts - 1, last_error=why, sent_run_id=sent_run_id))


def mark_sent(conn: sa.Connection, row_id: int, sent_at: datetime, target_id: str | None = None) -> None:
    """The side took the write; ``target_id`` is the id it answered with (none for a delete)."""
    values: dict[str, Any] = {"status": "sent", "sent_at": sent_at, "last_error": None}
    if target_id is not None:
        values["target_id"] = target_id
    conn.execute(sa.update(outbox).where(outbox.c.id == row_id).values(values))


def retry_later(conn: sa.Connection, row_id: int, error: str) -> None:
    """Back to ``pending`` with why (transient, GHL's day spent, its contact not created yet): the
    task's retry or the next run sends it."""
    conn.execute(sa.update(outbox).where(outbox.c.id == row_id).values(status="pending", last_error=error))


def fail(conn: sa.Connection, row_id: int, error: str) -> None:
    """Refused for good, or a dead letter: ``failed`` with why, until an operator retries or discards it."""
    conn.execute(sa.update(outbox).where(outbox.c.id == row_id).values(status="failed", last_error=error))


def move(conn: sa.Connection, profile: str, ids: Sequence[int] | None, to: str) -> tuple[int, list[int]]:
    """An operator's move: failed (or, by id, pending) rows to ``to``; rows already sent are never
    touched. A retry never puts a superseded row back in line: it is marked superseded, and its id
    returned."""
    chosen = outbox.c.profile == profile
    if ids:
        chosen &= outbox.c.id.in_(ids) & outbox.c.status.in_(["failed", "pending", "dry_run"])
    else:
        chosen &= outbox.c.status == "failed"
    replaced = [] if to != "pending" else list(conn.scalars(
        sa.select(outbox.c.id).where(chosen, superseded()).order_by(outbox.c.id)))
    if replaced:
        conn.execute(sa.update(outbox).where(outbox.c.id.in_(replaced)).values(status="superseded"))
    moved = conn.execute(sa.update(outbox).where(chosen, outbox.c.id.not_in(replaced)).values(status=to)).rowcount
    return moved, replaced

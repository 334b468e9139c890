"""The pipeline's side of the webhook inbox (the receiver's store is ``crm_sync.webhooks.inbox``):
which GHL contacts the events ask to read, which GHL deleted, and marking the events a successful
run used.

Extract takes the location's events no earlier successful run of this profile used (``pending``;
the app's own webhooks for the profile: ``pending_app``) and hands their ids on
(``crm_sync.pipeline.handoff``); load marks exactly those done, GHL's and the app's, when it
finishes without a transient failure (the condition on which the watermarks move too). A failed
run marks nothing, so its events are read again by the next run, batch or fast lane.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from crm_sync.http import ApiError
from crm_sync.pipeline import handoff
from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.warehouse.ops import insert_ignore
from crm_sync.warehouse.tables import webhook_done, webhook_inbox
from crm_sync.webhooks.app_events import source as app_source

log = logging.getLogger(__name__)
# The child list a contact's event calls for: a note, task or appointment created, changed or deleted.
READS = {"Note": "note", "Task": "task", "Appointment": "appointment"}
BATCH_LIMIT = 50_000  # events per run; the rest wait for the next run


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class PendingEvents:
    ids: list[int] = field(default_factory=list)
    reads: dict[str, set[str]] = field(default_factory=lambda: {entity: set() for entity in READS.values()})
    deleted_contacts: set[str] = field(default_factory=set)
    contacts: set[str] = field(default_factory=set)  # every contact an event names (the fast lane reads them)
    records: dict[str, set[str]] = field(default_factory=dict)  # app events: entity -> the app's record ids
    oldest_received_at: datetime | None = None
    left_pending: int = 0  # events past ``max_records``: not taken, so not marked done (the next run's)

    def handed_on(self, deleted: list[str], used: bool = True, started_at: datetime | None = None
                  ) -> handoff.WebhookEvents:
        """What extract hands on; ``used`` False (it stopped before reading all they call for): no event
        id, so load marks none done and the next run takes them again. ``started_at``: when the run
        began, for the age of its oldest event (the console shows what woke a run, and how late)."""
        oldest = self.oldest_received_at
        age = (max(0.0, round((_utc(started_at) - oldest).total_seconds(), 3))
               if oldest is not None and started_at is not None else None)
        return handoff.WebhookEvents(ids=self.ids if used else [], deleted_contacts=deleted,
                                     reads={entity: len(ids) for entity, ids in self.reads.items()},
                                     oldest_received_at=oldest.isoformat() if oldest else None, age_at_start_s=age)


def _waiting(ctx: RunContext, source: sa.ColumnElement[bool], before: datetime | None) -> sa.Select:
    """The inbox rows of ``source`` this profile has not used in a successful run, oldest first;
    ``before``: only those received by then (the events the run's reads are sure to cover)."""
    done = sa.select(webhook_done.c.inbox_id).where(webhook_done.c.profile == ctx.profile.name,
                                                    webhook_done.c.inbox_id == webhook_inbox.c.id)
    received = [webhook_inbox.c.received_at <= before] if before is not None else []
    return (sa.select(webhook_inbox.c.id, webhook_inbox.c.event_type, webhook_inbox.c.contact_id,
                      webhook_inbox.c.object_id, webhook_inbox.c.entity, webhook_inbox.c.received_at)
            .where(source, ~sa.exists(done), *received).order_by(webhook_inbox.c.id).limit(BATCH_LIMIT))


def _within(rows: list[sa.Row], record: Callable[[sa.Row], object], max_records: int | None
            ) -> tuple[list[sa.Row], int]:
    """The oldest events whose records (``record``: the one an event names, or None) number at most
    ``max_records``, and how many are left: a bulk import is read over several runs, each one
    inside its task's timeout and its share of GHL's daily budget, instead of failing them all."""
    named: set[object] = set()
    for index, row in enumerate(rows):
        if (key := record(row)) is not None and key not in named:
            if max_records is not None and len(named) >= max_records:
                return rows[:index], len(rows) - index
            named.add(key)
    return rows, 0


def pending(conn: sa.Connection, ctx: RunContext, location_id: str, before: datetime | None = None,
            max_records: int | None = None) -> PendingEvents:
    """The location's GHL events this profile has not used in a successful run, oldest first;
    ``max_records``: only the oldest events naming at most that many contacts (the rest stay pending)."""
    if ctx.profile.ghl.location_id not in (None, location_id):
        raise ValueError(f"profile {ctx.profile.name}: ghl.location_id {ctx.profile.ghl.location_id} is not the "
                         f"location of connection '{ctx.profile.ghl.conn_id}' ({location_id})")
    rows, left = _within(conn.execute(_waiting(ctx, sa.and_(webhook_inbox.c.location_id == location_id,
                                                            webhook_inbox.c.source == "ghl"), before)).all(),
                         lambda row: row.contact_id or None, max_records)
    work = PendingEvents(ids=[r.id for r in rows], oldest_received_at=min(
        (_utc(r.received_at) for r in rows), default=None), left_pending=left)
    for row in rows:
        if not row.contact_id:
            continue
        work.contacts.add(row.contact_id)
        if row.event_type == "ContactDelete":
            work.deleted_contacts.add(row.contact_id)
        elif entity := next((e for prefix, e in READS.items() if row.event_type.startswith(prefix)), None):
            work.reads[entity].add(row.contact_id)
    # Other Contact* events need no read of their own: the run's contact search finds the change.
    return work


def pending_app(conn: sa.Connection, ctx: RunContext, before: datetime | None = None,
                max_records: int | None = None) -> PendingEvents:
    """The app's events for this profile not used in a successful run: ``records`` names, per entity
    the profile syncs, the app's ids they changed. An event of an entity the profile does not sync is
    used (marked done) and read by nothing. ``max_records``: as for ``pending``."""
    synced = set(ctx.profile.synced())
    rows, left = _within(conn.execute(_waiting(ctx, webhook_inbox.c.source == app_source(ctx.profile.name),
                                               before)).all(),
                         lambda row: (row.entity, row.object_id) if row.entity in synced and row.object_id else None,
                         max_records)
    work = PendingEvents(ids=[r.id for r in rows], oldest_received_at=min(
        (_utc(r.received_at) for r in rows), default=None), left_pending=left)
    for row in rows:
        if row.entity in synced and row.object_id:
            work.records.setdefault(row.entity, set()).add(row.object_id)
    return work


def contacts_by_id(client, contact_ids: set[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The contacts GHL still has (one GET each), and those it answered 400 or 404 for (gone)."""
    found, gone = [], []
    for contact_id in sorted(contact_ids):
        try:
            found.append(client.get_contact(contact_id))
        except ApiError as exc:
            if exc.status not in (400, 404):
                raise
            gone.append(contact_id)
    return found, gone


def confirmed_deleted(client, contact_ids: set[str]) -> list[str]:
    """The contacts GHL really no longer has: an event is never the only evidence."""
    return contacts_by_id(client, contact_ids)[1]


def mark_done(conn: sa.Connection, ctx: RunContext) -> int:
    """Mark the events this run's extracts used (GHL's and the app's) as done for this profile; call
    only on success."""
    ids = [i for side in ("ghl", "app") for i in handoff.read(conn, ctx, side).webhook_events.ids]
    now = utcnow()
    insert_ignore(conn, webhook_done, [{"profile": ctx.profile.name, "inbox_id": i, "run_id": ctx.run_id,
                                        "done_at": now} for i in ids], keys=["profile", "inbox_id"])
    return len(ids)

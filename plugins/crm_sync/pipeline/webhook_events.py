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
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from crm_sync.http import ApiError
from crm_sync.pipeline import handoff
from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.warehouse.ops import insert_ignore
from crm_sync.warehouse.tables import webhook_done, webhook_inbox

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


def pending(conn: sa.Connection, ctx: RunContext, location_id: str, before: datetime | None = None
            ) -> PendingEvents:
    """The location's GHL events this profile has not used in a successful run, oldest first."""
    if ctx.profile.ghl.location_id not in (None, location_id):
        raise ValueError(f"profile {ctx.profile.name}: ghl.location_id {ctx.profile.ghl.location_id} is not the "
                         f"location of connection '{ctx.profile.ghl.conn_id}' ({location_id})")
    rows = conn.execute(_waiting(ctx, sa.and_(webhook_inbox.c.location_id == location_id,
                                              webhook_inbox.c.source == "ghl"), before)).all()
    work = PendingEvents(ids=[r.id for r in rows], oldest_received_at=min(
        (_utc(r.received_at) for r in rows), default=None))
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


def app_source(profile: str) -> str:
    """The inbox's ``source`` of the app's own webhooks for this profile."""
    return f"app:{profile}"


def pending_app(conn: sa.Connection, ctx: RunContext, before: datetime | None = None) -> PendingEvents:
    """The app's events for this profile not used in a successful run: ``records`` names, per entity
    the profile syncs, the app's ids they changed. An event of an entity the profile does not sync is
    used (marked done) and read by nothing."""
    rows = conn.execute(_waiting(ctx, webhook_inbox.c.source == app_source(ctx.profile.name), before)).all()
    work = PendingEvents(ids=[r.id for r in rows], oldest_received_at=min(
        (_utc(r.received_at) for r in rows), default=None))
    synced = set(ctx.profile.synced())
    for row in rows:
        if row.entity in synced and row.object_id:
            work.records.setdefault(row.entity, set()).add(row.object_id)
    return work


def confirmed_deleted(client, contact_ids: set[str]) -> list[str]:
    """The contacts GHL really no longer has (one GET each): an event is never the only evidence."""
    gone = []
    for contact_id in sorted(contact_ids):
        try:
            client.get_contact(contact_id)
        except ApiError as exc:
            if exc.status not in (400, 404):
                raise
            gone.append(contact_id)
    return gone


def mark_done(conn: sa.Connection, ctx: RunContext) -> int:
    """Mark the events this run's extracts used (GHL's and the app's) as done for this profile; call
    only on success."""
    ids = [i for side in ("ghl", "app") for i in handoff.read(conn, ctx, side).webhook_events.ids]
    now = utcnow()
    insert_ignore(conn, webhook_done, [{"profile": ctx.profile.name, "inbox_id": i, "run_id": ctx.run_id,
                                        "done_at": now} for i in ids], keys=["profile", "inbox_id"])
    return len(ids)

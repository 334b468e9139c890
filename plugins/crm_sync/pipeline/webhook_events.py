"""The pipeline's side of the webhook inbox (the receiver's store is ``crm_sync.webhooks.inbox``):
which GHL contacts the events ask to read, which GHL deleted, and marking the events a successful
run used.

Extract takes the location's events no earlier successful run of this profile used (``pending``)
and hands their ids on (``crm_sync.pipeline.handoff``); load marks exactly those done when it
finishes without a transient failure (the condition on which the watermarks move too). A failed
run marks nothing, so its events are read again by the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

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


@dataclass
class PendingEvents:
    ids: list[int] = field(default_factory=list)
    reads: dict[str, set[str]] = field(default_factory=lambda: {entity: set() for entity in READS.values()})
    deleted_contacts: set[str] = field(default_factory=set)

    def handed_on(self, deleted: list[str], used: bool = True) -> handoff.WebhookEvents:
        """What extract hands on; ``used`` False (it stopped before reading all they call for): no event
        id, so load marks none done and the next run takes them again."""
        return handoff.WebhookEvents(ids=self.ids if used else [], deleted_contacts=deleted,
                                     reads={entity: len(ids) for entity, ids in self.reads.items()})


def pending(conn: sa.Connection, ctx: RunContext, location_id: str) -> PendingEvents:
    """The location's events this profile has not used in a successful run, oldest first."""
    if ctx.profile.ghl.location_id not in (None, location_id):
        raise ValueError(f"profile {ctx.profile.name}: ghl.location_id {ctx.profile.ghl.location_id} is not the "
                         f"location of connection '{ctx.profile.ghl.conn_id}' ({location_id})")
    done = sa.select(webhook_done.c.inbox_id).where(webhook_done.c.profile == ctx.profile.name,
                                                    webhook_done.c.inbox_id == webhook_inbox.c.id)
    rows = conn.execute(sa.select(webhook_inbox.c.id, webhook_inbox.c.event_type, webhook_inbox.c.contact_id)
                        .where(webhook_inbox.c.location_id == location_id, webhook_inbox.c.source == "ghl",
                               ~sa.exists(done))
                        .order_by(webhook_inbox.c.id).limit(BATCH_LIMIT)).all()
    work = PendingEvents(ids=[r.id for r in rows])
    for row in rows:
        if not row.contact_id:
            continue
        if row.event_type == "ContactDelete":
            work.deleted_contacts.add(row.contact_id)
        elif entity := next((e for prefix, e in READS.items() if row.event_type.startswith(prefix)), None):
            work.reads[entity].add(row.contact_id)
    # Other Contact* events need no read of their own: the run's contact search finds the change.
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
    """Mark the events this run's extract used as done for this profile; call only on success."""
    ids = handoff.read(conn, ctx, "ghl").webhook_events.ids
    now = utcnow()
    insert_ignore(conn, webhook_done, [{"profile": ctx.profile.name, "inbox_id": i, "run_id": ctx.run_id,
                                        "done_at": now} for i in ids], keys=["profile", "inbox_id"])
    return len(ids)

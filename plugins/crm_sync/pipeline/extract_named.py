"""The fast lane's extract: only the records the pending webhook events name, read by id.

GHL: each contact an event names (``GET /contacts/{id}``), with the complete child list its event
calls for (a Task*, Note* or Appointment* event: that contact's tasks, notes or appointments), and
each ContactDelete confirmed by a GET, as the batch extract does. The app: each record its own
webhook names (``AppClient.get``); a record the app no longer has is logged and read by nothing
(a soft delete is a record with its marker, and lands as one). Both land through the batch's
``extract.land``, so stage, validate, reconcile and load see the same rows either lane reads.

No window and no watermark: the batch run's windows stay the safety net for a lost webhook. The
handoff carries what the batch owes forward unchanged (``read_last`` must not lose it), and the
event ids only when every read they call for succeeded, so load marks them done only then.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from crm_sync.hooks.app import AppHook
from crm_sync.hooks.ghl import DailyBudgetReached, GHLHook
from crm_sync.http import ApiError
from crm_sync.pipeline import handoff, webhook_events
from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.pipeline.extract import Extracted, _ghl_tasks, _last_synced, _linked_children, land
from crm_sync.profile import Side
from crm_sync.warehouse.db import engine

log = logging.getLogger(__name__)


def _contacts_by_id(client, contact_ids: set[str]) -> tuple[list[dict[str, Any]], set[str]]:
    """The named contacts GHL still has, and those it answered 400/404 for (gone)."""
    found, gone = [], set()
    for contact_id in sorted(contact_ids):
        try:
            found.append(client.get_contact(contact_id))
        except ApiError as exc:
            if exc.status not in (400, 404):
                raise
            gone.add(contact_id)
    return found, gone


def _named_ghl(ctx: RunContext, conn: sa.Connection, started) -> Extracted:
    client = GHLHook(ctx.profile.ghl.conn_id).get_conn(page_limit=ctx.profile.ghl.page_limit,
                                                       paging=dict(ctx.profile.ghl.paging),
                                                       daily_reserve=ctx.profile.ghl.daily_reserve)
    synced_entities = ctx.profile.synced()
    owed = handoff.read_last(conn, ctx.profile.name, "ghl").owed  # the batch's, carried on untouched
    try:
        events = webhook_events.pending(conn, ctx, client.location_id)
        records: list[tuple[str, dict]] = []
        read: dict[str, set[str]] = {}
        deleted: list[str] = []
        facts: dict[str, Any] = {"named": {"contact": len(events.contacts)}}
        stopped = None
        try:
            contacts, gone = _contacts_by_id(client, events.contacts - events.deleted_contacts)
            records += [("contact", c) for c in contacts]
            linked = {entity: {r.contact_id for r in _linked_children(conn, ctx, entity)}
                      for entity in ("task", "note", "appointment") if entity in synced_entities}
            wanted = {entity: sorted(ids - gone) for entity, ids in events.reads.items() if entity in linked}
            if wanted.get("task"):
                tasks, read["task"] = _ghl_tasks(client, False, wanted["task"], linked["task"])
                records += [("task", task) for task in tasks]
            if wanted.get("note"):
                listed = client.notes_for(wanted["note"])
                records += [("note", note) for notes in listed.values() for note in notes]
                read["note"] = set(listed)
            if wanted.get("appointment"):
                for contact_id in wanted["appointment"]:  # the contact's whole list: a missing linked one was deleted
                    records += [("appointment", a) for a in client.contact_appointments(contact_id)]
                read["appointment"] = set(wanted["appointment"])
            facts["named"].update({entity: len(ids) for entity, ids in wanted.items()})
            deleted = webhook_events.confirmed_deleted(client, events.deleted_contacts & set(_last_synced(conn, ctx)))
        except DailyBudgetReached as reached:  # the events stay pending: the batch run reads them
            stopped = reached
            facts["budget_stop"] = str(reached)
            log.warning("%s; the fast lane leaves its events to the next run", reached)
        complete = {entity: sorted(ids & linked[entity]) for entity, ids in read.items()} if stopped is None else {}
        handed_on = handoff.Handoff(owed=owed, webhook_events=events.handed_on(
            deleted, used=stopped is None, started_at=ctx.started_at or started))
        return Extracted(records, client.metrics, None, complete, facts, handed_on)
    finally:
        client.close()


def _named_app(ctx: RunContext, conn: sa.Connection, started) -> Extracted:
    events = webhook_events.pending_app(conn, ctx)
    handed_on = handoff.Handoff(webhook_events=events.handed_on([], started_at=ctx.started_at or started))
    if ctx.profile.app.kind != "rest" or not events.records:
        return Extracted([], None, None, handed_on=handed_on)
    client = AppHook(ctx.profile.app).get_conn()
    records: list[tuple[str, dict]] = []
    try:
        for entity in ctx.profile.synced():
            for record_id in sorted(events.records.get(entity, ())):
                if (record := client.get(entity, record_id)) is None:
                    log.info("the app no longer has %s %s an event named; nothing to read", entity, record_id)
                    continue
                records.append((entity, record))
        facts = {"named": {entity: len(ids) for entity, ids in events.records.items()}}
        return Extracted(records, client.metrics, None, facts=facts, handed_on=handed_on)
    finally:
        client.close()


def extract_named(ctx: RunContext, side: Side) -> dict[str, Any]:
    """Land the records one side's pending webhook events name; log the extract and its handoff."""
    eng, started = engine(), utcnow()
    with eng.connect() as conn:
        got = _named_ghl(ctx, conn, started) if side == "ghl" else _named_app(ctx, conn, started)
    return land(eng, ctx, side, got)

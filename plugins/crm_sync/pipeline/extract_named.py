"""The fast lane's extract: only the records the pending webhook events name, read by id.

GHL: each contact an event names (``GET /contacts/{id}``), with the complete child list its event
calls for (a Task*, Note* or Appointment* event: that contact's tasks, notes or appointments), and
each ContactDelete confirmed by a GET, as the batch extract does. The app: each record its own
webhook names (``AppClient.get``); a record the app no longer has is logged and read by nothing
(a soft delete is a record with its marker, and lands as one), and one the app refuses (a 4xx, not
429) is logged and left to the batch run. Both land through the batch's ``extract.land``, so stage,
validate, reconcile and load see the same rows either lane reads. One run reads at most
``MAX_RECORDS`` records a side; the newer events wait, pending, for the next run.

No window and no watermark: the batch run's windows stay the safety net for a lost webhook. The
handoff carries what the batch owes forward unchanged (``read_last`` must not lose it), and the
event ids only when every read they call for succeeded, so load marks them done only then.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from crm_sync.hooks.app import AppClient, AppHook
from crm_sync.hooks.ghl import DailyBudgetReached, GHLHook
from crm_sync.http import ApiError
from crm_sync.pipeline import handoff, webhook_events
from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.pipeline.extract import Extracted, _ghl_tasks, _last_synced, _linked_children, land
from crm_sync.profile import Side
from crm_sync.warehouse.db import engine

log = logging.getLogger(__name__)


# The records one fast run reads at most (each side): past it, the newer events stay pending for the
# next run or the batch, so a bulk import neither outlasts the task's timeout nor spends GHL's daily
# budget again on every retry.
MAX_RECORDS = 500
# A refusal about the caller or the moment, not about one record: the run fails, its events stay pending.
NOT_PER_RECORD = {401, 407, 408, 429}


def _refused_record(exc: ApiError) -> bool:
    """A 4xx for one record (400, 403, 410, 422...): that record cannot be read by id here."""
    return exc.status is not None and 400 <= exc.status < 500 and exc.status not in NOT_PER_RECORD


def read_app_records(client: AppClient, named: dict[str, set[str]], entities: list[str]
                     ) -> tuple[list[tuple[str, dict]], list[tuple[str, str]]]:
    """Each record the app's events name, by id; and those the app refused one by one (a 4xx, not
    429): those are logged and left to the batch run, whose window lists them, so one bad record
    does not stall every other change behind it. A 5xx or a transport failure raises (the run fails,
    its events stay pending); a record the app no longer has (404) is logged and read by nothing."""
    records: list[tuple[str, dict]] = []
    refused: list[tuple[str, str]] = []
    for entity in entities:
        for record_id in sorted(named.get(entity, ())):
            try:
                record = client.get(entity, record_id)
            except ApiError as exc:
                if not _refused_record(exc):
                    raise
                log.warning("the app refused to read %s %s an event named (%s); left to the batch run",
                            entity, record_id, exc.status)
                refused.append((entity, record_id))
                continue
            if record is None:
                log.info("the app no longer has %s %s an event named; nothing to read", entity, record_id)
                continue
            records.append((entity, record))
    return records, refused


def _left_pending(events: webhook_events.PendingEvents, side: str, facts: dict[str, Any]) -> None:
    if events.left_pending:
        facts["left_pending"] = events.left_pending
        log.warning("%s: %d more %s events than the fast lane reads at once (%d records); they wait for the "
                    "next run", side, events.left_pending, side, MAX_RECORDS)


def _named_ghl(ctx: RunContext, conn: sa.Connection, started) -> Extracted:
    client = GHLHook(ctx.profile.ghl.conn_id, location_id=ctx.profile.ghl.location_id).get_conn(
        page_limit=ctx.profile.ghl.page_limit, paging=dict(ctx.profile.ghl.paging),
        daily_reserve=ctx.profile.ghl.daily_reserve)
    synced_entities = ctx.profile.synced()
    owed = handoff.read_last(conn, ctx.profile.name, "ghl").owed  # the batch's, carried on untouched
    try:
        events = webhook_events.pending(conn, ctx, client.location_id, max_records=MAX_RECORDS)
        records: list[tuple[str, dict]] = []
        read: dict[str, set[str]] = {}
        linked: dict[str, set[str]] = {}
        deleted: list[str] = []
        facts: dict[str, Any] = {"named": {"contact": len(events.contacts)}}
        _left_pending(events, "GHL", facts)
        stopped = None
        try:
            contacts, gone = webhook_events.contacts_by_id(client, events.contacts - events.deleted_contacts)
            records += [("contact", c) for c in contacts]
            wanted = {entity: sorted(ids - set(gone)) for entity, ids in events.reads.items()
                      if entity in synced_entities}
            # Only the named contacts' linked children, and only for a list an event calls for.
            linked = {entity: {r.contact_id for r in _linked_children(conn, ctx, entity, set(ids))}
                      for entity, ids in wanted.items() if ids}
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
            if events.deleted_contacts:
                synced = _last_synced(conn, ctx, events.deleted_contacts)
                deleted = webhook_events.confirmed_deleted(client, events.deleted_contacts & set(synced))
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
    events = webhook_events.pending_app(conn, ctx, max_records=MAX_RECORDS)
    handed_on = handoff.Handoff(webhook_events=events.handed_on([], started_at=ctx.started_at or started))
    facts: dict[str, Any] = {"named": {entity: len(ids) for entity, ids in events.records.items()}}
    _left_pending(events, "app", facts)
    if ctx.profile.app.kind != "rest" or not events.records:
        return Extracted([], None, None, facts=facts, handed_on=handed_on)
    client = AppHook(ctx.profile.app).get_conn()
    try:
        records, refused = read_app_records(client, events.records, ctx.profile.synced())
        if refused:
            facts["refused"] = len(refused)
        return Extracted(records, client.metrics, None, facts=facts, handed_on=handed_on)
    finally:
        client.close()


def extract_named(ctx: RunContext, side: Side) -> dict[str, Any]:
    """Land the records one side's pending webhook events name; log the extract and its handoff."""
    eng, started = engine(), utcnow()
    with eng.connect() as conn:
        got = _named_ghl(ctx, conn, started) if side == "ghl" else _named_app(ctx, conn, started)
    return land(eng, ctx, side, got)

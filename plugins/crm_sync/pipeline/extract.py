"""Extract: land one side's changed records of every synced entity, as received, in raw_record.

Contacts (and the app's tasks, notes and appointments) come from each API's incremental
listing over the run's window. GHL has no "changed since" listing for the others: its
appointments come from the location's calendars over a time range (a few calls per calendar,
whatever the number of contacts), its tasks from the task search (the whole location every
``ghl.task_scan_hours``, else only the changed contacts' tasks), its notes from the contacts
this window found changed (every contact on the first sync: GHL lists notes only per contact).
A record is landed only when its payload differs from the one last staged (``landing``).
What the later steps and the next run need from extract is its ``handoff``: which contacts'
complete child lists were read and the children on them that were not landed (reconcile sees
GHL deletes only there), what the day's budget left unread, the webhook events used.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from crm_sync.hooks.app import AppHook
from crm_sync.hooks.ghl import DailyBudgetReached, GHLClient, GHLHook
from crm_sync.pipeline import handoff, webhook_events
from crm_sync.pipeline.context import RunContext, Window, extraction_window, log_step, utcnow
from crm_sync.pipeline.csv_source import read_csv_folder
from crm_sync.pipeline.landing import changed_only
from crm_sync.pipeline.shape import shape_problem, stand_in
from crm_sync.profile import Side
from crm_sync.records import MALFORMED_PREFIX, dig, record_key
from crm_sync.timezones import moment_or_none
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.ops import insert_ignore
from crm_sync.warehouse.tables import raw_record, staging_record, xref

log = logging.getLogger(__name__)


def raw_row(ctx: RunContext, side: Side, entity: str, payload: Any, extracted_at) -> dict[str, Any]:
    id_field, updated_field = ctx.profile.record_fields(side, entity)
    contact_field = None if entity == "contact" else "contactId" if side == "ghl" else ctx.profile.contact_field(entity)
    if (broken := shape_problem(payload, id_field, contact_field)) is not None:  # stage quarantines it
        return {"profile": ctx.profile.name, "run_id": ctx.run_id, "side": side, "entity": entity,
                "record_key": record_key(payload, malformed=True), "source_id": None, "source_updated_at": None,
                "payload": stand_in(broken, payload), "extracted_at": extracted_at}
    source_id = dig(payload, id_field)
    source_id = str(source_id) if source_id not in (None, "") else None
    updated = moment_or_none(dig(payload, updated_field), ctx.profile.side_zone(side))  # a bad one: stage quarantines it with the rule
    key = record_key(payload, source_id)
    return {"profile": ctx.profile.name, "run_id": ctx.run_id, "side": side, "entity": entity, "record_key": key,
            "source_id": source_id, "source_updated_at": updated, "payload": payload, "extracted_at": extracted_at}


def _each_malformed_apart(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Identical malformed records are keyed by their content: the second and later copies get ``:2``,
    ``:3``... so each is landed and quarantined, not folded into the first (a valid record's key is its id)."""
    seen: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row["record_key"].startswith(MALFORMED_PREFIX):
            seen[row["entity"], row["record_key"]] += 1
            if (copy := seen[row["entity"], row["record_key"]]) > 1:
                row["record_key"] += f":{copy}"
    return rows


def _ghl_tasks(client: GHLClient, full: bool, changed: list[str], linked: set[str]) -> tuple[list[dict], set[str]]:
    """Tasks GHL changed: GHL has no "changed since" for tasks, and a task edit leaves its contact
    untouched. So the location-wide search reads every task once every ``ghl.task_scan_hours``
    (and on the first sync); other runs read only the tasks of the contacts this window changed,
    by the search's contactId filter, so their cost follows the changes, not the location's size.
    Changed contacts holding linked tasks get their complete, unpaged list instead (to see deletes).
    Answers the tasks and the contacts whose complete list was read."""
    listed = client.tasks_for(sorted(set(changed) & linked))
    found = [task for children in listed.values() for task in children]
    others = sorted(set(changed) - linked)
    if full or others:
        found += client.search_tasks(None if full else others)
    well = [shape_problem(task, "id", "contactId") is None and task.get("id") not in (None, "") for task in found]
    tasks = {task["id"]: task for task, ok in zip(found, well, strict=True) if ok}
    malformed = [task for task, ok in zip(found, well, strict=True) if not ok]  # stage quarantines them
    return list(tasks.values()) + malformed, set(listed)


def _task_scan_due(conn: sa.Connection, ctx: RunContext) -> bool:
    """Whether the last full read of GHL's tasks is older than ``ghl.task_scan_hours``."""
    finished = handoff.last_task_full_scan(conn, ctx.profile.name)
    return finished is None or utcnow() - finished >= timedelta(hours=ctx.profile.ghl.task_scan_hours)


def _read_until_stopped(contacts: Iterator[dict[str, Any]]) -> tuple[list[dict[str, Any]], DailyBudgetReached | None]:
    """Every contact the search yields, or those read before the day's budget ran low."""
    read: list[dict[str, Any]] = []
    try:
        read.extend(contacts)
    except DailyBudgetReached as stop:
        return read, stop
    return read, None


def _stopped_window(window: Window, contacts: list[dict[str, Any]]) -> Window:
    """The part of the window a stopped contact search covered: the search is sorted by dateUpdated,
    so every contact updated before the last one read was read; the next run starts there."""
    reached = [m for c in contacts if isinstance(c, dict) and (m := moment_or_none(c.get("dateUpdated")))]
    return replace(window, until=reached[-1] if reached else window.since, stopped=True)


def _appointment_range(ctx: RunContext, first: bool) -> tuple[datetime, datetime]:
    """Appointments come from the calendars over a time range: the first sync looks back
    ``appointment_history_days``, later runs ``appointment_lookback_days`` (a past appointment
    marked showed or no-show), and every run ``appointment_horizon_days`` ahead."""
    ghl, now = ctx.profile.ghl, utcnow()
    back = ghl.appointment_history_days if first else ghl.appointment_lookback_days
    return now - timedelta(days=back), now + timedelta(days=ghl.appointment_horizon_days)


def _complete_in_range(rows: list[sa.Row], start: datetime, end: datetime) -> set[str]:
    """Contacts all of whose linked appointments start in the range read: for them, the calendars'
    answer is a complete list (a linked appointment missing from it was deleted in GHL)."""
    inside: dict[str, bool] = {}
    for r in rows:
        moment = moment_or_none((r.fields or {}).get("start"))
        inside[r.contact_id] = inside.get(r.contact_id, True) and moment is not None and start <= moment <= end
    return {contact_id for contact_id, ok in inside.items() if ok}


def _last_synced(conn: sa.Connection, ctx: RunContext, contact_ids: set[str] | None = None) -> dict[str, Any]:
    """When each linked GHL contact was last synced (our write, or a reconcile that found it equal);
    ``contact_ids``: only those (the fast lane asks of a few, not the whole table)."""
    only = [xref.c.ghl_id.in_(sorted(contact_ids))] if contact_ids is not None else []
    return {r.ghl_id: r.updated_at for r in conn.execute(sa.select(xref.c.ghl_id, xref.c.updated_at).where(
        xref.c.profile == ctx.profile.name, xref.c.entity == "contact", xref.c.ghl_id.is_not(None), *only))}


def _changed_since_sync(contacts: list[dict[str, Any]], synced: dict[str, Any]) -> list[str]:
    """Contacts edited after we last synced them: the echo of our own write, or a contact seen again
    in an overlapping window, needs no child reads."""
    changed = []
    for contact in contacts:
        last, updated = synced.get(contact["id"]), moment_or_none(contact.get("dateUpdated"))
        if last is None or updated is None or updated > last:
            changed.append(contact["id"])
    return changed


def _linked_children(conn: sa.Connection, ctx: RunContext, entity: str, contact_ids: set[str] | None = None
                     ) -> list[sa.Row]:
    """(GHL contact id, fields) of each GHL child of this entity linked on both sides; ``contact_ids``:
    only those contacts' children (the fast lane asks of a few, not the whole table)."""
    only = [staging_record.c.contact_id.in_(sorted(contact_ids))] if contact_ids is not None else []
    return conn.execute(sa.select(staging_record.c.contact_id, staging_record.c.fields).join(xref, sa.and_(
        xref.c.profile == staging_record.c.profile, xref.c.entity == staging_record.c.entity,
        xref.c.ghl_id == staging_record.c.source_id)).where(
        staging_record.c.profile == ctx.profile.name, staging_record.c.entity == entity,
        staging_record.c.side == "ghl", xref.c.app_id.is_not(None), *only)).all()


@dataclass
class Extracted:
    records: list[tuple[str, dict]]
    metrics: Any
    window: Window | None  # None: the records an event named (the fast lane), no window, no watermark move
    complete: dict[str, list[str]] = field(default_factory=dict)  # entity -> contacts whose full list was read
    facts: dict[str, Any] = field(default_factory=dict)  # for people: the report, the task's return value
    handed_on: handoff.Handoff = field(default_factory=handoff.Handoff)  # its lists are filled in by extract


def _extract_ghl(ctx: RunContext, window: Window, conn: sa.Connection) -> Extracted:
    """Contacts changed in the window; notes of those contacts (every contact on the first sync:
    GHL lists notes only per contact); tasks and appointments location-wide (see above); and what
    the webhook inbox names: each contact an event names gets the read its event calls for.

    When the day's budget is down to ``ghl.daily_reserve`` (DailyBudgetReached, raised before any
    call is sent), each read stops where it is and every later one at once: what was read lands,
    and what was not is handed on as ``owed`` (contacts whose notes or tasks wait, where the
    appointment range began; the contact window ends at the last contact read), so the next run
    reads exactly that, plus its own changes. The webhook events stay pending for the next run."""
    client = GHLHook(ctx.profile.ghl.conn_id, location_id=ctx.profile.ghl.location_id).get_conn(
        page_limit=ctx.profile.ghl.page_limit, paging=dict(ctx.profile.ghl.paging),
        daily_reserve=ctx.profile.ghl.daily_reserve)
    synced_entities, owed = ctx.profile.synced(), {}
    owed_before = handoff.read_last(conn, ctx.profile.name, "ghl").owed
    try:
        contacts, stop = _read_until_stopped(client.search_contacts(window.since, window.until))
        if stop:
            window = _stopped_window(window, contacts)
        usable = [c for c in contacts if shape_problem(c, "id") is None and c.get("id")]  # the rest: quarantined
        synced = _last_synced(conn, ctx)
        changed = _changed_since_sync(usable, synced)
        everyone = sorted({c["id"] for c in usable} | set(synced))
        # Only events the search covers: a contact's event received after its window ends waits for the next run.
        webhooks = webhook_events.pending(conn, ctx, client.location_id, before=window.until or window.started_at)
        named = {entity: contact_ids & set(everyone) for entity, contact_ids in webhooks.reads.items()}
        # The first sync of an entity (a new profile, or one switched on later) covers every known contact.
        first = {entity: extraction_window(conn, ctx, "ghl", entity).mode == "initial"
                 for entity in ("task", "note", "appointment")}
        linked_rows = {entity: _linked_children(conn, ctx, entity) for entity in ("task", "note", "appointment")}
        linked = {entity: {r.contact_id for r in rows} for entity, rows in linked_rows.items()}
        records: list[tuple[str, dict]] = [("contact", c) for c in contacts]
        read: dict[str, set[str]] = {}
        facts: dict[str, Any] = {}
        task_full_scan = False
        if "task" in synced_entities:
            full = first["task"] or _task_scan_due(conn, ctx)
            wanted = [] if first["task"] else sorted(set(changed) | named["task"] | set(owed_before.task))
            try:  # a stopped scan is due again next run (task_full_scan is handed on only when it ends)
                tasks, read["task"] = _ghl_tasks(client, full, wanted, linked["task"])
                records += [("task", task) for task in tasks]
                task_full_scan = full
            except DailyBudgetReached as reached:
                stop, owed["task"] = stop or reached, wanted
        if "appointment" in synced_entities:
            start, end = _appointment_range(ctx, first["appointment"])
            if begun := moment_or_none(owed_before.appointment_from):
                start = min(start, begun)
            window_days = timedelta(days=ctx.profile.ghl.calendar_window_days)
            try:
                records += [("appointment", a) for a in client.appointments_between(start, end, window_days)]
                read["appointment"] = _complete_in_range(linked_rows["appointment"], start, end)
                facts["appointment_range"] = [start.isoformat(), end.isoformat()]
            except DailyBudgetReached as reached:
                stop, owed["appointment_from"] = stop or reached, start.isoformat()
        if "note" in synced_entities:
            wanted = set(everyone if first["note"] else changed) | named["note"] | set(owed_before.note)
            try:  # last: per contact, the bulk of a first sync, which can spread over days
                listed = client.notes_for(sorted(wanted))
            except DailyBudgetReached as reached:
                stop, listed, owed["note"] = stop or reached, reached.partial, reached.unread
            records += [("note", note) for notes in listed.values() for note in notes]
            read["note"] = set(listed)
        deleted: list[str] = []
        if stop is None:
            try:
                deleted = webhook_events.confirmed_deleted(client, webhooks.deleted_contacts & set(synced))
            except DailyBudgetReached as reached:
                stop = reached
        # Contacts whose complete list of an entity this run read (every call succeeded): a linked
        # child missing from one was deleted in GHL. Only those holding linked children matter.
        complete = {entity: sorted(contact_ids & linked[entity]) for entity, contact_ids in read.items()}
        if stop:
            log.warning("%s; left for the next run: %s", stop, {k: len(v) if isinstance(v, list) else v
                                                                   for k, v in owed.items()} or "no child reads")
            facts["budget_stop"] = str(stop)
        handed_on = handoff.Handoff(task_full_scan=task_full_scan, owed=handoff.Owed(**owed),
                                    webhook_events=webhooks.handed_on(deleted, used=stop is None,
                                                                      started_at=ctx.started_at or window.started_at))
        return Extracted(records, client.metrics, window, complete, facts, handed_on)
    finally:
        client.close()


def _extract_app(ctx: RunContext, conn: sa.Connection) -> Extracted:
    windows = {entity: extraction_window(conn, ctx, "app", entity) for entity in ctx.profile.synced()}
    if ctx.profile.app.kind == "csv":
        return Extracted(read_csv_folder(ctx.profile), None, windows["contact"])
    # The app's webhook events this window covers (received before it ends) are used by this run too.
    window = windows["contact"]
    events = webhook_events.pending_app(conn, ctx, before=window.until or window.started_at)
    client = AppHook(ctx.profile.app).get_conn()
    try:
        records = [(entity, record) for entity, window in windows.items()
                   for record in client.list_changed(entity, window.since, window.until, ctx.profile.zone)]
        handed_on = handoff.Handoff(webhook_events=events.handed_on([], started_at=ctx.started_at or window.started_at))
        return Extracted(records, client.metrics, window, handed_on=handed_on)
    finally:
        client.close()


def extract(ctx: RunContext, side: Side) -> dict[str, Any]:
    eng = engine()
    with eng.connect() as conn:
        window = extraction_window(conn, ctx, side, "contact")
        got = _extract_ghl(ctx, window, conn) if side == "ghl" else _extract_app(ctx, conn)
    return land(eng, ctx, side, got)


def land(eng: sa.Engine, ctx: RunContext, side: Side, got: Extracted) -> dict[str, Any]:
    """Land what one side's extract read (the batch's windows, or the fast lane's named records), log
    the step and its handoff: one path from the API's answer to raw_record for both lanes."""
    with eng.connect() as conn:
        records, extracted_at = got.records, utcnow()
        rows, unchanged = changed_only(conn, ctx, side, _each_malformed_apart(
            [raw_row(ctx, side, entity, record, extracted_at) for entity, record in records]))
    per_entity = {entity: sum(1 for e, _ in records if e == entity) for entity in ctx.profile.synced()}
    stats = {"extracted": len(records), "landed": len(rows), "unchanged": len(unchanged), "by_entity": per_entity,
             "window_mode": got.window.mode if got.window else "named",
             "api": got.metrics.as_dict() if got.metrics else {}, **got.facts}
    # Reconcile sees a GHL child delete where a complete list lacks a linked child: the children read
    # but not landed (unchanged) are still on that list.
    listed = {entity: sorted(r["source_id"] for r in unchanged if r["entity"] == entity
                             and str(r["payload"].get("contactId")) in set(contact_ids))
              for entity, contact_ids in got.complete.items()}
    handed_on = got.handed_on.model_copy(update={"complete_lists": got.complete, "unchanged_listed": listed})
    with eng.begin() as conn:
        insert_ignore(conn, raw_record, rows, keys=["profile", "run_id", "side", "entity", "record_key"])
        log_step(conn, ctx, "extract", stats, side=side, window=got.window)
        handoff.record(conn, ctx, side, handed_on)
    return stats

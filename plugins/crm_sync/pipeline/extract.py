"""Extract: land one side's changed records of every synced entity, as received, in raw_record.

Contacts (and the app's tasks, notes and appointments) come from each API's incremental
listing over the run's window. GHL has no "changed since" listing for the others: its
tasks come from the location-wide task search (a few paged calls), its notes and
appointments from the contacts this window found changed (every contact on the first sync),
plus the appointments of contacts with a linked appointment still to come. The run log keeps
which contacts' complete child lists were read: reconcile sees GHL deletes only there.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa

from crm_sync.digest import digest
from crm_sync.hooks.app import AppHook, dig
from crm_sync.hooks.ghl import GHLClient, GHLHook
from crm_sync.pipeline import inbox
from crm_sync.pipeline.context import RunContext, Window, extraction_window, log_step, utcnow
from crm_sync.pipeline.csv_source import read_csv_folder
from crm_sync.pipeline.normalize import moment_or_none
from crm_sync.pipeline.shape import shape_problem, stand_in
from crm_sync.profile import Side
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.ops import insert_ignore
from crm_sync.warehouse.tables import raw_record, staging_record, xref


def raw_row(ctx: RunContext, side: Side, entity: str, payload: Any, extracted_at) -> dict[str, Any]:
    id_field, updated_field = ctx.profile.record_fields(side, entity)
    contact_field = None if entity == "contact" else "contactId" if side == "ghl" else ctx.profile.contact_field(entity)
    if (broken := shape_problem(payload, id_field, contact_field)) is not None:  # stage quarantines it
        return {"profile": ctx.profile.name, "run_id": ctx.run_id, "side": side, "entity": entity,
                "record_key": f"malformed:{digest(payload)[:40]}", "source_id": None, "source_updated_at": None,
                "payload": stand_in(broken, payload), "extracted_at": extracted_at}
    source_id = dig(payload, id_field)
    source_id = str(source_id) if source_id not in (None, "") else None
    updated = moment_or_none(dig(payload, updated_field), ctx.profile.side_zone(side))  # a bad one: stage quarantines it with the rule
    key = source_id or "sha256:" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:40]
    return {"profile": ctx.profile.name, "run_id": ctx.run_id, "side": side, "entity": entity, "record_key": key,
            "source_id": source_id, "source_updated_at": updated, "payload": payload, "extracted_at": extracted_at}


def _ghl_children(client: GHLClient, ctx: RunContext, ids: dict[str, list[str]]
                  ) -> tuple[list[tuple[str, dict]], dict[str, set[str]]]:
    """``ids``: per entity, the contacts whose complete list to read. Tasks also come from the
    location-wide search (every run); their per-contact lists are read only to see deletes.
    Answers the children and, per entity, the contacts whose list was read."""
    synced = ctx.profile.synced()
    records: list[tuple[str, dict]] = []
    read: dict[str, set[str]] = {}
    if "task" in synced:
        found = list(client.search_tasks())
        listed = client.tasks_for(ids["task"])
        found += [task for children in listed.values() for task in children]
        well = [shape_problem(task, "id", "contactId") is None and task.get("id") not in (None, "") for task in found]
        tasks = {task["id"]: task for task, ok in zip(found, well, strict=True) if ok}
        records += [("task", task) for task in tasks.values()]
        records += [("task", task) for task, ok in zip(found, well, strict=True) if not ok]  # quarantined in stage
        read["task"] = set(listed)
    for entity, fetch in (("note", client.notes_for), ("appointment", client.appointments_for)):
        if entity in synced:
            listed = fetch(ids[entity])
            records += [(entity, child) for children in listed.values() for child in children]
            read[entity] = set(listed)
    return records, read


def _last_synced(conn: sa.Connection, ctx: RunContext) -> dict[str, Any]:
    """When each linked GHL contact was last synced (our write, or a reconcile that found it equal)."""
    return {r.ghl_id: r.updated_at for r in conn.execute(sa.select(xref.c.ghl_id, xref.c.updated_at).where(
        xref.c.profile == ctx.profile.name, xref.c.entity == "contact", xref.c.ghl_id.is_not(None)))}


def _changed_since_sync(contacts: list[dict[str, Any]], synced: dict[str, Any]) -> list[str]:
    """Contacts edited after we last synced them: the echo of our own write, or a contact seen again
    in an overlapping window, needs no child reads."""
    changed = []
    for contact in contacts:
        last, updated = synced.get(contact["id"]), moment_or_none(contact.get("dateUpdated"))
        if last is None or updated is None or updated > last:
            changed.append(contact["id"])
    return changed


def _linked_children(conn: sa.Connection, ctx: RunContext, entity: str) -> list[sa.Row]:
    """(GHL contact id, fields) of each GHL child of this entity linked on both sides."""
    return conn.execute(sa.select(staging_record.c.contact_id, staging_record.c.fields).join(xref, sa.and_(
        xref.c.profile == staging_record.c.profile, xref.c.entity == staging_record.c.entity,
        xref.c.ghl_id == staging_record.c.source_id)).where(
        staging_record.c.profile == ctx.profile.name, staging_record.c.entity == entity,
        staging_record.c.side == "ghl", xref.c.app_id.is_not(None))).all()


def _upcoming(appointments: list[sa.Row]) -> set[str]:
    """Contacts holding a linked appointment not over yet, whose reschedule or cancel GHL does not
    show on its contact."""
    now = utcnow()
    return {r.contact_id for r in appointments
            if (moment_or_none((r.fields or {}).get("end") or (r.fields or {}).get("start")) or now) >= now}


def _extract_ghl(ctx: RunContext, window: Window, conn: sa.Connection
                 ) -> tuple[list[tuple[str, dict]], Any, dict[str, list[str]], dict[str, Any]]:
    client = GHLHook(ctx.profile.ghl.conn_id).get_conn(page_limit=ctx.profile.ghl.page_limit,
                                                       paging=dict(ctx.profile.ghl.paging))
    try:
        contacts = list(client.search_contacts(window.since, window.until))
        usable = [c for c in contacts if shape_problem(c, "id") is None and c.get("id")]  # the rest: quarantined
        synced = _last_synced(conn, ctx)
        changed = _changed_since_sync(usable, synced)
        everyone = sorted({c["id"] for c in usable} | set(synced))
        webhooks = inbox.pending(conn, ctx, client.location_id)
        named = {entity: contact_ids & set(everyone) for entity, contact_ids in webhooks.reads.items()}
        # The first sync of an entity (a new profile, or one switched on later) covers every known contact.
        first = {entity: extraction_window(conn, ctx, "ghl", entity).mode == "initial"
                 for entity in ("task", "note", "appointment")}
        linked_rows = {entity: _linked_children(conn, ctx, entity) for entity in ("task", "note", "appointment")}
        linked = {entity: {r.contact_id for r in rows} for entity, rows in linked_rows.items()}
        upcoming = _upcoming(linked_rows["appointment"])
        # Each contact a webhook named gets the one list its event calls for.
        ids = {"task": [] if first["task"] else sorted((set(changed) | named["task"]) & linked["task"]),
               "note": everyone if first["note"] else sorted(set(changed) | named["note"]),
               "appointment": everyone if first["appointment"] else
               sorted(set(changed) | upcoming | named["appointment"])}
        children, read = _ghl_children(client, ctx, ids)
        deleted = inbox.confirmed_deleted(client, webhooks.deleted_contacts & set(synced))
        # Contacts whose complete list of an entity this run read (unpaged, every call succeeded):
        # a linked child missing from one was deleted in GHL. Only those holding linked children matter.
        complete = {entity: sorted(contact_ids & linked[entity]) for entity, contact_ids in read.items()}
        return [("contact", c) for c in contacts] + children, client.metrics, complete, webhooks.as_log(deleted)
    finally:
        client.close()


def _extract_app(ctx: RunContext, conn: sa.Connection) -> tuple[list[tuple[str, dict]], Any, dict[str, Window]]:
    windows = {entity: extraction_window(conn, ctx, "app", entity) for entity in ctx.profile.synced()}
    if ctx.profile.app.kind == "csv":
        return read_csv_folder(ctx.profile), None, windows
    client = AppHook(ctx.profile.app).get_conn()
    try:
        records = [(entity, record) for entity, window in windows.items()
                   for record in client.list_changed(entity, window.since, window.until, ctx.profile.zone)]
        return records, client.metrics, windows
    finally:
        client.close()


def extract(ctx: RunContext, side: Side) -> dict[str, Any]:
    eng = engine()
    with eng.connect() as conn:
        window = extraction_window(conn, ctx, side, "contact")
        complete: dict[str, list[str]] = {}
        webhooks: dict[str, Any] = {}
        if side == "ghl":
            records, metrics, complete, webhooks = _extract_ghl(ctx, window, conn)
        else:
            records, metrics, windows = _extract_app(ctx, conn)
            window = windows["contact"]
    extracted_at = utcnow()
    rows = [raw_row(ctx, side, entity, record, extracted_at) for entity, record in records]
    per_entity = {entity: sum(1 for e, _ in records if e == entity) for entity in ctx.profile.synced()}
    stats = {"extracted": len(rows), "by_entity": per_entity, "window_mode": window.mode,
             "api": metrics.as_dict() if metrics else {}}
    with eng.begin() as conn:
        insert_ignore(conn, raw_record, rows, keys=["profile", "run_id", "side", "entity", "record_key"])
        log_step(conn, ctx, "extract", {**stats, "complete_lists": complete, "inbox": webhooks}, side=side,
                 window=window)
    return stats

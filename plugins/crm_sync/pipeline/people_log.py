"""``sync_changelog`` (one row per outbox row: every write, with what it replaced, what it set, who won
and the run that planned and sent it) and ``sync_snapshot`` (each record's latest sync status), for
the records and writes in scope (crm_sync.pipeline.people_scope). Called by
crm_sync.pipeline.people_models.refresh.
"""

from __future__ import annotations


import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.pipeline.people_scope import Scope, by_side_ids, insert_rows, persons_of, quarantine_rule, rows_in
from crm_sync.warehouse.ops import upsert
from crm_sync.warehouse.tables import (outbox, quarantine, review_candidate, staging_contact, staging_record,
                                       sync_changelog, sync_snapshot, xref)

WAITING = {"pending": "pending", "sending": "pending", "dry_run": "planned", "failed": "failed", "dead": "failed"}
NOT_APPLIED = ("superseded", "discarded")


def _entities(scope: Scope) -> dict[str, dict[str, set[str]]]:
    return {"contact": scope.contacts, **scope.children}


def _records(conn: sa.Connection, ctx: RunContext, scope: Scope):
    """The staged records in scope, their links and their quarantine rows."""
    name = ctx.profile.name
    contacts_q = sa.select(staging_contact.c.side, staging_contact.c.source_id, staging_contact.c.raw_id,
                           staging_contact.c.deleted, sa.literal(None).label("contact_id")).where(
        staging_contact.c.profile == name)
    children_q = sa.select(staging_record.c.entity, staging_record.c.side, staging_record.c.source_id,
                           staging_record.c.raw_id, staging_record.c.deleted, staging_record.c.contact_id).where(
        staging_record.c.profile == name)
    links_q = sa.select(xref.c.id, xref.c.entity, xref.c.ghl_id, xref.c.app_id).where(xref.c.profile == name)
    bad_q = sa.select(quarantine).where(quarantine.c.profile == name, quarantine.c.source_id.is_not(None))
    if scope.full:
        staged = {("contact", r.side, r.source_id): r for r in conn.execute(contacts_q)}
        staged.update({(r.entity, r.side, r.source_id): r for r in conn.execute(children_q)})
        return staged, list(conn.execute(links_q)), list(conn.execute(bad_q))
    staged, links, bad = {}, [], []
    for entity, keys in _entities(scope).items():
        for side in ("ghl", "app"):
            if entity == "contact":
                rows = rows_in(conn, contacts_q.where(staging_contact.c.side == side), staging_contact.c.source_id,
                               keys[side])
            else:
                rows = rows_in(conn, children_q.where(staging_record.c.entity == entity,
                                                      staging_record.c.side == side),
                               staging_record.c.source_id, keys[side])
            staged.update({(entity, side, r.source_id): r for r in rows})
            bad += rows_in(conn, bad_q.where(quarantine.c.entity == entity, quarantine.c.side == side),
                           quarantine.c.source_id, keys[side])
        links += by_side_ids(conn, links_q.where(xref.c.entity == entity), xref, keys)
    return staged, links, bad


def _writes(conn: sa.Connection, ctx: RunContext, scope: Scope, links: list[sa.Row]) -> list[sa.Row]:
    """The outbox rows in scope: this run's, and every write of a link they or the records in scope have."""
    mine = outbox.c.profile == ctx.profile.name
    if scope.full:
        return list(conn.execute(sa.select(outbox).where(mine).order_by(outbox.c.id)))
    ran = {w.id: w for w in scope.writes}
    others = {r.xref_id for r in scope.writes} | {r.id for r in links}
    ran.update({w.id: w for w in rows_in(conn, sa.select(outbox).where(mine), outbox.c.xref_id, others)})
    return sorted(ran.values(), key=lambda r: r.id)


def refresh_log(conn: sa.Connection, ctx: RunContext, scope: Scope) -> dict[str, int]:
    """Upsert the changelog rows of the writes in scope and the snapshot rows of the records in scope."""
    name, now = ctx.profile.name, utcnow()
    staged, links, bad = _records(conn, ctx, scope)
    writes = _writes(conn, ctx, scope, links)
    contact_links = {r.id: r for r in links if r.entity == "contact"}
    wanted = {w.xref_id if w.entity == "contact" else w.contact_xref_id for w in writes} - set(contact_links) - {None}
    contact_links.update({r.id: r for r in rows_in(conn, sa.select(xref.c.id, xref.c.entity, xref.c.ghl_id,
                                                                   xref.c.app_id), xref.c.id, wanted)})
    contacts = {"ghl": set(), "app": set()}
    for link in contact_links.values():
        for side in ("ghl", "app"):
            if getattr(link, f"{side}_id") is not None:
                contacts[side].add(getattr(link, f"{side}_id"))
    for (entity, side, source_id), row in staged.items():
        contact = source_id if entity == "contact" else row.contact_id
        if contact is not None:
            contacts[side].add(contact)
    person_of = persons_of(conn, name, None if scope.full else contacts)

    def person_of_link(link_id: int | None) -> int | None:
        link = contact_links.get(link_id)
        return link and (person_of.get(("ghl", link.ghl_id)) or person_of.get(("app", link.app_id)))

    changelog = [{
        "outbox_id": w.id, "profile": name, "entity": w.entity, "side": w.side, "op": w.op,
        "person_id": person_of_link(w.xref_id if w.entity == "contact" else w.contact_xref_id),
        "record_id": w.target_id, "before": w.before, "after": w.payload, "decisions": w.decisions,
        "status": "planned" if w.status == "dry_run" else w.status, "run_id": w.run_id, "sent_run_id": w.sent_run_id,
        "planned_at": w.created_at, "sent_at": w.sent_at, "error": w.last_error} for w in writes]
    snapshot = _snapshot(ctx, staged, links, bad, writes, person_of, _reviewed(conn, name), now)
    if scope.full:  # a first refresh rebuilds them
        for table in (sync_changelog, sync_snapshot):
            conn.execute(sa.delete(table).where(table.c.profile == name))
        insert_rows(conn, sync_changelog, changelog)
        insert_rows(conn, sync_snapshot, snapshot)
    else:
        upsert(conn, sync_changelog, changelog, keys=["outbox_id"])
        upsert(conn, sync_snapshot, snapshot, keys=["profile", "entity", "side", "record_id"])
    return {"changelog": len(changelog), "snapshot": len(snapshot)}


def _reviewed(conn: sa.Connection, name: str) -> dict[tuple[str, str], str]:
    return {(side, getattr(r, f"{side}_id")): r.reason for r in conn.execute(sa.select(review_candidate).where(
        review_candidate.c.profile == name)) for side in ("ghl", "app")}


def _snapshot(ctx: RunContext, staged: dict, links: list[sa.Row], bad: list[sa.Row], writes: list[sa.Row],
              person_of: dict[tuple[str, str], int], reviewed: dict[tuple[str, str], str], now) -> list[dict]:
    """Each record's latest status: quarantined, waiting for review, its link's latest write failed,
    pending or planned, else synced (linked) or one_side."""
    link_of = {(r.entity, s, getattr(r, f"{s}_id")): r for r in links for s in ("ghl", "app")
               if getattr(r, f"{s}_id") is not None}
    latest: dict[tuple[str, int], sa.Row] = {}
    for w in writes:  # in outbox order: the last one stays
        if w.status not in NOT_APPLIED:
            latest[(w.entity, w.xref_id)] = w
    quarantined: dict[tuple[str, str, str], list[sa.Row]] = {}
    for row in bad:
        quarantined.setdefault((row.entity, row.side, row.source_id), []).append(row)
    rows = []
    for key in {*staged, *quarantined}:
        entity, side, record_id = key
        row, link = staged.get(key), link_of.get(key)
        linked = link is not None and link.ghl_id is not None and link.app_id is not None
        write = latest.get((entity, link.id)) if link is not None else None
        rule = quarantine_rule(quarantined.get(key, []), row, linked)
        contact = record_id if entity == "contact" else (row.contact_id if row is not None else None)
        if rule:
            status, detail = "quarantined", rule
        elif entity == "contact" and (side, record_id) in reviewed:
            status, detail = "review", reviewed[(side, record_id)]
        elif write is not None and write.status in WAITING:
            status, detail = WAITING[write.status], write.last_error
        else:
            status, detail = ("synced" if linked else "one_side"), None
        rows.append({"profile": ctx.profile.name, "entity": entity, "side": side, "record_id": record_id,
                     "person_id": person_of.get((side, contact)) if contact else None, "status": status,
                     "detail": detail, "last_op": write.op if write is not None else None, "run_id": ctx.run_id,
                     "updated_at": now})
    return rows


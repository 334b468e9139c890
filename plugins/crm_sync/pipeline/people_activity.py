"""``person_activity``: every task, note and appointment of either system, one row each (a linked pair
is one row, ``sides`` both), under its contact's person, with its time in UTC and in the profile's
zone. Refreshed for the records in scope (crm_sync.pipeline.people_scope) by
crm_sync.pipeline.people_models.refresh.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.pipeline.people_scope import CHILDREN, Scope, by_side_ids, insert_rows, persons_of, rows_in
from crm_sync.timezones import day_instant
from crm_sync.warehouse.ops import upsert
from crm_sync.warehouse.tables import person_activity, staging_record, xref

COMPARED = ("person_id", "ghl_id", "app_id", "sides", "title", "status", "at_utc", "at_local", "zone")
WHEN = {"task": "due_date", "appointment": "start", "note": "date"}
TITLE_CHARS = 200


def moment(value: Any, zone) -> datetime | None:
    """A canonical datetime (UTC ISO 8601, or a date alone: noon of that day in the profile's zone, as
    GHL is given it) as an aware instant; None when it is neither."""
    if not value:
        return None
    text = str(value)
    try:
        if len(text) == 10:
            return day_instant(date.fromisoformat(text), zone)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def describe(entity: str, fields: dict[str, Any], deleted: bool, updated_at: datetime | None, zone
             ) -> dict[str, Any]:
    """Title, status and time of one task, note or appointment from its canonical fields."""
    if entity == "note":
        lines = str(fields.get("body") or "").strip().splitlines()
        title = lines[0][:TITLE_CHARS] if lines else None
        status = None
    else:
        title = fields.get("title")
        status = ("completed" if fields.get("completed") else "open") if entity == "task" \
            else (str(fields["status"]).lower() if fields.get("status") else None)
    at = moment(fields.get(WHEN[entity]), zone) or (updated_at if entity == "note" else None)
    return {"title": title, "status": "deleted" if deleted else status, "at_utc": at,
            "at_local": at.astimezone(zone).isoformat(timespec="seconds") if at else None}


def _load(conn: sa.Connection, ctx: RunContext, scope: Scope, moved: set[int]):
    name = ctx.profile.name
    links_q = sa.select(xref).where(xref.c.profile == name, xref.c.entity.in_(CHILDREN))
    acts_q = sa.select(person_activity).where(person_activity.c.profile == name)
    staged_q = sa.select(staging_record).where(staging_record.c.profile == name)
    if scope.full:
        return list(conn.execute(links_q)), list(conn.execute(acts_q)), list(conn.execute(staged_q))
    keys = {e: {s: set(ids) for s, ids in sides.items()} for e, sides in scope.children.items()}
    for row in rows_in(conn, acts_q, person_activity.c.person_id, moved):  # a person split: re-read its own
        for side in ("ghl", "app"):
            if getattr(row, f"{side}_id") is not None:
                keys[row.entity][side].add(getattr(row, f"{side}_id"))
    links, acts, staged = [], [], []
    for entity in CHILDREN:
        mine = keys[entity]
        for _ in range(3):  # the other record of a pair, and the link of each, until nothing new turns up
            found = (by_side_ids(conn, links_q.where(xref.c.entity == entity), xref, mine),
                     by_side_ids(conn, acts_q.where(person_activity.c.entity == entity), person_activity, mine))
            grown = [(s, getattr(r, f"{s}_id")) for rows in found for r in rows for s in ("ghl", "app")
                     if getattr(r, f"{s}_id") is not None and getattr(r, f"{s}_id") not in mine[s]]
            for side, source_id in grown:
                mine[side].add(source_id)
            if not grown:
                break
        links += found[0]
        acts += found[1]
        for side in ("ghl", "app"):
            staged += rows_in(conn, staged_q.where(staging_record.c.entity == entity, staging_record.c.side == side),
                              staging_record.c.source_id, mine[side])
    return links, acts, staged


def refresh_activities(conn: sa.Connection, ctx: RunContext, scope: Scope, moved: set[int]) -> int:
    """Upsert the activity rows of the tasks, notes and appointments in scope; returns rows written."""
    links, acts, staged_rows = _load(conn, ctx, scope, moved)
    staged = {(r.entity, r.side, r.source_id): r for r in staged_rows}
    contacts = {"ghl": set(), "app": set()}
    for r in staged_rows:
        if r.contact_id is not None:
            contacts[r.side].add(r.contact_id)
    person_of = persons_of(conn, ctx.profile.name, None if scope.full else contacts)
    identities: dict[tuple[str, str | None, str | None], sa.Row | None] = {
        (r.entity, r.ghl_id, r.app_id): r for r in links if r.ghl_id or r.app_id}
    linked = {(r.entity, s, getattr(r, f"{s}_id")) for r in links for s in ("ghl", "app")}
    for key in staged:
        if key not in linked:
            entity, side, source_id = key
            identities.setdefault((entity, source_id, None) if side == "ghl" else (entity, None, source_id), None)
    owner = {(a.entity, s, getattr(a, f"{s}_id")): a.activity_id for a in acts for s in ("ghl", "app")
             if getattr(a, f"{s}_id") is not None}
    by_id = {a.activity_id: a for a in acts}
    zone, now, taken = ctx.profile.zone, utcnow(), set()
    merged: list[int] = []
    moving, updates, inserts = [], [], []
    for (entity, g_id, a_id), link in sorted(identities.items(), key=lambda item: not (item[0][1] and item[0][2])):
        g, a = staged.get((entity, "ghl", g_id)), staged.get((entity, "app", a_id))
        if g is None and a is None:
            continue
        both = bool(g_id and a_id)
        first = g if g is not None else a
        base = link.base if link is not None and both and isinstance(link.base, dict) else {}
        fields = {**(first.fields or {}), **base}
        contact = (person_of.get(("ghl", g.contact_id)) if g is not None else None) or \
            (person_of.get(("app", a.contact_id)) if a is not None else None)
        values = {"person_id": contact, "ghl_id": g_id, "app_id": a_id,
                  "sides": "both" if both else ("ghl" if g_id else "app"), "zone": ctx.profile.timezone,
                  **describe(entity, fields, bool((g is not None and g.deleted) or (a is not None and a.deleted)),
                             first.updated_at, zone)}
        mine = sorted({owner[k] for k in ((entity, "ghl", g_id), (entity, "app", a_id)) if k in owner} - taken)
        taken.update(mine)
        row = {**values, "profile": ctx.profile.name, "entity": entity, "run_id": ctx.run_id, "updated_at": now}
        if not mine:
            inserts.append(row)
            continue
        keep = by_id[mine[0]]
        merged += mine[1:]
        if (keep.ghl_id, keep.app_id) != (g_id, a_id):
            moving.append({"aid": keep.activity_id, "g": g_id if keep.ghl_id == g_id else None,
                           "a": a_id if keep.app_id == a_id else None})
        if mine[1:] or any(getattr(keep, c) != values[c] for c in COMPARED):
            updates.append({**row, "activity_id": keep.activity_id})
    if merged:
        conn.execute(sa.delete(person_activity).where(person_activity.c.activity_id.in_(merged)))
    if moving:
        conn.execute(sa.update(person_activity).where(person_activity.c.activity_id == sa.bindparam("aid")).values(
            ghl_id=sa.bindparam("g"), app_id=sa.bindparam("a")), moving)
    if updates:
        upsert(conn, person_activity, updates, keys=["activity_id"])
    if inserts:
        insert_rows(conn, person_activity, inserts)
    return len(updates) + len(inserts)

"""The analysts' models, kept current by every run: ``refresh`` upserts ``person`` (one row per person
per profile across both systems), ``person_activity`` (crm_sync.pipeline.people_activity),
``sync_changelog`` and ``sync_snapshot`` (crm_sync.pipeline.people_log) for the records the run
touched (crm_sync.pipeline.people_scope), in bulk statements. The report task calls it, whatever
happened before, so a failed run, a dry run and an asset-triggered (webhook) run refresh too.

The meaning of each column: docs/warehouse-models.md. A person's id is stable: when the records of
two people become linked (xref), the older (smaller) person_id stays, the other row is deleted and
its activities, changelog and snapshot rows point to the kept id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.pipeline.people_activity import refresh_activities
from crm_sync.pipeline.people_log import refresh_log
from crm_sync.pipeline.people_scope import Scope, by_side_ids, insert_rows, quarantine_rule, rows_in, touched
from crm_sync.pipeline.people_search_keys import fold_name, phone_digits
from crm_sync.warehouse.ops import upsert
from crm_sync.warehouse.tables import (outbox, person, person_activity, quarantine, raw_record, review_candidate,
                                       staging_contact, sync_changelog, sync_snapshot, xref)

FIELDS = ("first_name", "last_name", "email", "phone", "company_name", "lead_source", "tags")
COMPARED = (*FIELDS, "ghl_id", "app_id", "status", "first_seen", "last_synced", "ghl_changed_at",
            "app_changed_at", "winners", "search_name", "search_email", "search_phone")
NOT_APPLIED = ("superseded", "discarded")  # writes whose decisions never reached a record


def refresh(conn: sa.Connection, ctx: RunContext) -> dict[str, Any]:
    """Bring the four models up to date with what this run touched (a profile's first refresh: everyone).
    Returns how many rows of each it wrote and how long it took."""
    started = time.monotonic()
    scope = touched(conn, ctx)
    people = refresh_people(conn, ctx, scope)
    activities = refresh_activities(conn, ctx, scope, people.moved)
    logged = refresh_log(conn, ctx, scope)
    return {"full": scope.full, "people": people.written, "people_merged": len(people.merged),
            "activities": activities, **logged, "seconds": round(time.monotonic() - started, 3)}


@dataclass
class People:
    written: int = 0
    merged: dict[int, int] = field(default_factory=dict)  # deleted person_id -> the kept one
    moved: set[int] = field(default_factory=set)  # persons whose ids changed: their activities are re-read


@dataclass
class Facts:
    """What the warehouse holds about the contacts in scope."""

    links: list[sa.Row]
    persons: list[sa.Row]
    staged: dict[tuple[str, str], sa.Row]
    quarantined: dict[tuple[str, str], list[sa.Row]]
    reviewed: set[tuple[str, str]]
    first_raw: dict[tuple[str, str], datetime]
    writes: list[sa.Row]


def _side_rows(conn: sa.Connection, query: sa.Select, table: sa.Table, keys: dict[str, set[str]] | None
               ) -> list[sa.Row]:
    if keys is None:
        return list(conn.execute(query))
    return [row for side in ("ghl", "app")
            for row in rows_in(conn, query.where(table.c.side == side), table.c.source_id, keys[side])]


def _facts(conn: sa.Connection, ctx: RunContext, scope: Scope) -> Facts:
    name = ctx.profile.name
    links_q = sa.select(xref).where(xref.c.profile == name, xref.c.entity == "contact")
    persons_q = sa.select(person).where(person.c.profile == name)
    if scope.full:
        keys = None
        links, persons = list(conn.execute(links_q)), list(conn.execute(persons_q))
    else:  # a person's other record, and the link of each, until nothing new turns up
        keys = {side: set(ids) for side, ids in scope.contacts.items()}
        for _ in range(3):
            links, persons = by_side_ids(conn, links_q, xref, keys), by_side_ids(conn, persons_q, person, keys)
            grown = False
            for row in (*links, *persons):
                for side in ("ghl", "app"):
                    value = getattr(row, f"{side}_id")
                    if value is not None and value not in keys[side]:
                        keys[side].add(value)
                        grown = True
            if not grown:
                break
    staged = {(r.side, r.source_id): r for r in _side_rows(conn, sa.select(staging_contact).where(
        staging_contact.c.profile == name), staging_contact, keys)}
    quarantined: dict[tuple[str, str], list[sa.Row]] = {}
    for row in _side_rows(conn, sa.select(quarantine).where(
            quarantine.c.profile == name, quarantine.c.entity == "contact", quarantine.c.source_id.is_not(None)),
            quarantine, keys):
        quarantined.setdefault((row.side, row.source_id), []).append(row)
    reviewed = {(side, getattr(r, f"{side}_id")) for r in conn.execute(sa.select(review_candidate).where(
        review_candidate.c.profile == name)) for side in ("ghl", "app")}
    raws = sa.select(raw_record.c.side, raw_record.c.source_id, sa.func.min(raw_record.c.extracted_at)).where(
        raw_record.c.profile == name, raw_record.c.entity == "contact", raw_record.c.source_id.is_not(None))
    if not scope.full:
        raws = raws.where(raw_record.c.run_id == ctx.run_id)  # older records have their person already
    first_raw = {(side, source_id): at for side, source_id, at in conn.execute(
        raws.group_by(raw_record.c.side, raw_record.c.source_id))}
    writes = scope.writes if not scope.full else list(conn.execute(sa.select(
        outbox.c.id, outbox.c.entity, outbox.c.xref_id, outbox.c.contact_xref_id, outbox.c.status, outbox.c.sent_at,
        outbox.c.decisions, outbox.c.run_id).where(outbox.c.profile == name).order_by(outbox.c.id)))
    return Facts(links, persons, staged, quarantined, reviewed, first_raw, writes)


def _status(g: sa.Row | None, a: sa.Row | None, review: bool, quarantined: bool, linked: bool,
            g_id: str | None) -> str:
    if (g is not None and g.deleted) or (a is not None and a.deleted):
        return "deleted"
    if review:
        return "review"
    if quarantined:
        return "quarantined"
    if linked:
        return "synced"
    return "ghl_only" if g_id is not None else "app_only"  # by the ids: a record never staged has no row


def _search(g: sa.Row | None, a: sa.Row | None, region: str) -> dict[str, str | None]:
    rows = [r for r in (g, a) if r is not None]
    names = dict.fromkeys(f for f in (fold_name(" ".join(p for p in (r.first_name, r.last_name) if p)) for r in rows)
                          if f)
    emails = dict.fromkeys(r.email.lower() for r in rows if r.email)
    phones = dict.fromkeys(d for d in (_digits(r.phone, region) for r in rows if r.phone) if d)
    return {"search_name": " | ".join(names) or None, "search_email": " ".join(emails) or None,
            "search_phone": " ".join(phones) or None}


def _digits(phone: str, region: str) -> str | None:
    """A staged phone is E.164 already (normalize.phone): its digits; anything else parsed."""
    return phone[1:] if phone.startswith("+") and phone[1:].isdigit() else phone_digits(phone, region)


def _latest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def _earliest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None


def _by_link(facts: Facts) -> tuple[dict[int, datetime], dict[int, dict[str, Any]]]:
    """Per contact link: the latest send of a write for the person, and each field's last decision."""
    sent: dict[int, datetime] = {}
    winners: dict[int, dict[str, Any]] = {}
    for w in facts.writes:
        link = w.xref_id if w.entity == "contact" else w.contact_xref_id
        if link is None:
            continue
        if w.status == "sent" and w.sent_at is not None:
            sent[link] = max(sent.get(link, w.sent_at), w.sent_at)
        if w.entity == "contact" and w.status not in NOT_APPLIED:
            for d in w.decisions or []:
                if isinstance(d, dict) and d.get("field"):
                    winners.setdefault(link, {})[d["field"]] = {"side": d.get("winner"), "reason": d.get("reason"),
                                                                "run_id": w.run_id}
    return sent, winners


def _identities(facts: Facts) -> list[tuple[str | None, str | None, sa.Row | None]]:
    """(ghl_id, app_id, link) of each person in scope: every contact link, and each record no link
    holds (one the profile does not copy over, an ambiguous one, one quarantined before it was ever
    staged); linked pairs first, so they take the rows of the people they join."""
    found: dict[tuple[str | None, str | None], sa.Row | None] = {
        (r.ghl_id, r.app_id): r for r in facts.links if r.ghl_id or r.app_id}
    linked = {(s, getattr(r, f"{s}_id")) for r in facts.links for s in ("ghl", "app")}
    for side, source_id in [*facts.staged, *facts.quarantined]:
        if (side, source_id) not in linked:
            found.setdefault((source_id, None) if side == "ghl" else (None, source_id), None)
    return sorted(((g, a, link) for (g, a), link in found.items()), key=lambda item: not (item[0] and item[1]))


def _values(facts: Facts, g_id: str | None, a_id: str | None, link: sa.Row | None, old: list[sa.Row],
            link_decisions: dict[str, Any], sent: datetime | None, region: str, now: datetime
            ) -> dict[str, Any] | None:
    """A person's row (see docs/warehouse-models.md), from its records, its link and its older rows
    (``old``: the kept row first); None when the warehouse knows neither of its records."""
    g, a = facts.staged.get(("ghl", g_id)), facts.staged.get(("app", a_id))
    q = {(s, i): facts.quarantined.get((s, i), []) for s, i in (("ghl", g_id), ("app", a_id)) if i}
    if g is None and a is None and not any(q.values()):
        return None  # a link waiting for its first write
    linked = bool(g_id and a_id)
    rule = next((r for r in (quarantine_rule(rows, facts.staged.get(key), linked) for key, rows in q.items())
                 if r), None)
    base = link.base if link is not None and linked and isinstance(link.base, dict) else {}
    first = g if g is not None else a
    values = {name: base[name] if name in base else (getattr(first, name) if first is not None else None)
              for name in FIELDS}
    winners: dict[str, Any] = {}
    for row in reversed(old):  # the kept row's own decisions last: they win a tie
        winners.update(row.winners or {})
    winners.update(link_decisions)
    review = ("ghl", g_id) in facts.reviewed or ("app", a_id) in facts.reviewed
    return {**values, "ghl_id": g_id, "app_id": a_id, "status": _status(g, a, review, rule is not None, linked, g_id),
            "first_seen": _earliest(*(p.first_seen for p in old), facts.first_raw.get(("ghl", g_id)),
                                    facts.first_raw.get(("app", a_id)),
                                    *(r.created_at for rows in q.values() for r in rows)) or now,
            "last_synced": _latest(*(p.last_synced for p in old), link.updated_at if linked else None, sent),
            "ghl_changed_at": g.updated_at if g is not None else None,
            "app_changed_at": a.updated_at if a is not None else None,
            "winners": winners or None, **_search(g, a, region)}


def refresh_people(conn: sa.Connection, ctx: RunContext, scope: Scope) -> People:
    """Upsert the person rows of the contacts in scope, merging two rows whose records are now linked."""
    facts = _facts(conn, ctx, scope)
    now, region = utcnow(), ctx.profile.default_region
    sent, winners = _by_link(facts)
    by_id = {p.person_id: p for p in facts.persons}
    owner = {(s, getattr(p, f"{s}_id")): p.person_id for p in facts.persons for s in ("ghl", "app")
             if getattr(p, f"{s}_id") is not None}
    taken: set[int] = set()
    result, updates, inserts = People(), [], []
    for g_id, a_id, link in _identities(facts):
        mine = sorted({owner[k] for k in (("ghl", g_id), ("app", a_id)) if k in owner} - taken)
        old = [by_id[i] for i in mine]
        values = _values(facts, g_id, a_id, link, old, winners.get(link.id, {}) if link is not None else {},
                         sent.get(link.id) if link is not None else None, region, now)
        if values is None:
            continue
        taken.update(mine)
        row = {**values, "profile": ctx.profile.name, "run_id": ctx.run_id, "updated_at": now}
        if not old:
            inserts.append(row)
            continue
        keep = old[0]
        result.merged.update({p.person_id: keep.person_id for p in old[1:]})
        if (keep.ghl_id, keep.app_id) != (g_id, a_id):
            result.moved.add(keep.person_id)
        if old[1:] or any(getattr(keep, c) != values[c] for c in COMPARED):
            updates.append({**row, "person_id": keep.person_id})
    _write(conn, result, by_id, updates, inserts)
    result.written = len(updates) + len(inserts)
    return result


def _write(conn: sa.Connection, result: People, by_id: dict[int, sa.Row], updates: list[dict], inserts: list[dict]
           ) -> None:
    """Merged rows first (re-pointed, deleted), then ids that move between rows cleared, so no statement
    ever holds one record's id in two rows; then the updates and inserts in bulk."""
    if result.merged:
        for table in (person_activity, sync_changelog, sync_snapshot):
            conn.execute(sa.update(table).where(table.c.person_id == sa.bindparam("gone")).values(
                person_id=sa.bindparam("kept")), [{"gone": g, "kept": k} for g, k in result.merged.items()])
        conn.execute(sa.delete(person).where(person.c.person_id.in_(list(result.merged))))
    moving = [u for u in updates if u["person_id"] in result.moved]
    if moving:
        conn.execute(sa.update(person).where(person.c.person_id == sa.bindparam("pid")).values(
            ghl_id=sa.bindparam("g"), app_id=sa.bindparam("a")), [
            {"pid": u["person_id"], "g": u["ghl_id"] if by_id[u["person_id"]].ghl_id == u["ghl_id"] else None,
             "a": u["app_id"] if by_id[u["person_id"]].app_id == u["app_id"] else None} for u in moving])
    if updates:
        upsert(conn, person, updates, keys=["person_id"])
    if inserts:
        insert_rows(conn, person, inserts)


"""A rule's preview (issue 27): which current records it would act on, and what it would write, if
its trigger happened to each of them now. Reads only: nothing is planned, queued or recorded.

Before a rule goes live (or while it runs) an operator wants to see whom it would touch. Triggers
are differences between runs, so a preview cannot wait for one: it takes the records as staged now
(``staging_contact`` / ``staging_record``) of the rule's entity on the trigger's side (both for
``any``), treats the trigger as having happened now, and keeps those meeting the rule's conditions,
judged by the engine's own functions (crm_sync.pipeline.rules: ``met``, ``render``, ``due_at``) on a
``Subject`` built as reconcile builds one: canonical values, ``contact.<field>`` from the child's
contact, ``app:`` / ``ghl:`` from the payloads last extracted (``raw_record``, both sides of a linked
record). Each action is shown rendered: what it sets, the tag, the task's title and due time (the
event at now, in the profile's zone), or why it would write nothing (the contact is not on that
side, the tag is already there, the profile does not write tasks there).

Bounded: it reads the records a chunk at a time, newest changed first, and stops at ``limit``
matches or ``scan`` records, saying how many it read of how many, so a book of a million contacts
previews in the time of a few thousand.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crm_sync.pipeline.reconcile.planner import record_values
from crm_sync.pipeline.rules import Subject, due_at, met, render
from crm_sync.profile import Profile, Side
from crm_sync.profile_rules import Action, Rule, is_raw
from crm_sync.timezones import utcnow
from crm_sync.warehouse.tables import raw_record, staging_contact, staging_record, xref

LIMIT, SCAN, CHUNK = 50, 5_000, 500
OTHER: dict[str, Side] = {"ghl": "app", "app": "ghl"}
SIDE_NAMES = {"ghl": "GHL", "app": "the app"}


def rule_named(profile: Profile, name: str) -> Rule | None:
    """The profile's active rule of that name (``new_contact_tasks`` entries included), else None."""
    return next((rule for rule in profile.active_rules if rule.name == name), None)


def _table(entity: str) -> sa.Table:
    return staging_contact if entity == "contact" else staging_record


def _staged(conn: sa.Connection, profile: str, entity: str, side: str, ids: set[str]) -> dict[str, Any]:
    """Staged rows of one side by source id."""
    table, wanted = _table(entity), sorted(i for i in ids if i)
    if not wanted:
        return {}
    where = [table.c.profile == profile, table.c.side == side, table.c.source_id.in_(wanted)]
    if entity != "contact":
        where.append(table.c.entity == entity)
    return {row.source_id: row for row in conn.execute(sa.select(table).where(*where))}


def _links(conn: sa.Connection, profile: str, entity: str, side: str, ids: set[str]) -> dict[str, Any]:
    """The links (xref rows) of one side's records, by that side's id."""
    wanted = sorted(i for i in ids if i)
    if not wanted:
        return {}
    column = getattr(xref.c, f"{side}_id")
    return {getattr(row, f"{side}_id"): row for row in conn.execute(sa.select(xref).where(
        xref.c.profile == profile, xref.c.entity == entity, column.in_(wanted)))}


class Preview:
    """One preview's reads: a chunk of records at a time, with what their subjects and actions need."""

    def __init__(self, conn: sa.Connection, profile: Profile, rule: Rule, now: datetime):
        self.conn, self.profile, self.rule, self.now = conn, profile, rule, now
        self.entity = rule.entity
        self.sides: list[Side] = ["ghl", "app"] if rule.when.on_side == "any" else [rule.when.on_side]
        self.reads_raw = any(is_raw(name) for name in rule.fields_read())

    def total(self, side: str) -> int:
        table = _table(self.entity)
        where = [table.c.profile == self.profile.name, table.c.side == side, table.c.deleted.is_(False)]
        if self.entity != "contact":
            where.append(table.c.entity == self.entity)
        return self.conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()

    def chunk(self, side: str, offset: int, size: int) -> list[Any]:
        """Current records of one side, newest changed first (those with no time last), then by id."""
        table = _table(self.entity)
        where = [table.c.profile == self.profile.name, table.c.side == side, table.c.deleted.is_(False)]
        if self.entity != "contact":
            where.append(table.c.entity == self.entity)
        return self.conn.execute(sa.select(table).where(*where).order_by(
            table.c.updated_at.is_(None), table.c.updated_at.desc(), table.c.source_id)
            .limit(size).offset(offset)).all()

    def _raws(self, rows: list[Any]) -> dict[int, dict[str, Any]]:
        ids = sorted({row.raw_id for row in rows if row is not None and row.raw_id is not None})
        if not self.reads_raw or not ids:
            return {}
        return dict(self.conn.execute(sa.select(raw_record.c.id, raw_record.c.payload)
                                      .where(raw_record.c.id.in_(ids))).all())

    def subjects(self, side: Side, rows: list[Any]) -> list[tuple[Subject, dict[str, Any]]]:
        """Each record as the engine would see it if its trigger happened now, and what its actions
        need: its contact's id and tags on each side (None: not there; "" : its create is planned)."""
        name, other = self.profile.name, OTHER[side]
        ids = {row.source_id for row in rows}
        links = _links(self.conn, name, self.entity, side, ids)
        twins = _staged(self.conn, name, self.entity, other, {getattr(link, f"{other}_id") for link in links.values()})
        if self.entity == "contact":
            contact_ids = {row.source_id: row.source_id for row in rows}
        else:
            contact_ids = {row.source_id: row.contact_id for row in rows}
        own_contacts = _staged(self.conn, name, "contact", side, set(contact_ids.values()) - {None})
        contact_links = _links(self.conn, name, "contact", side, set(contact_ids.values()) - {None})
        other_contacts = _staged(self.conn, name, "contact", other,
                                 {getattr(link, f"{other}_id") for link in contact_links.values()})
        twin_of = {source_id: twins.get(getattr(link, f"{other}_id")) for source_id, link in links.items()}
        raws = self._raws([*rows, *twin_of.values()])
        found = []
        for row in rows:
            link, twin = links.get(row.source_id), twin_of.get(row.source_id)
            contact_id = contact_ids[row.source_id]
            contact_link = contact_links.get(contact_id)
            own = own_contacts.get(contact_id)
            contact = record_values(own._mapping, "contact") if own is not None else {}
            other_id = getattr(contact_link, f"{other}_id") if contact_link is not None else None
            other_row = other_contacts.get(other_id)
            raw = {side: raws.get(row.raw_id), other: raws.get(twin.raw_id) if twin is not None else None}
            subject = Subject(self.entity, side, row.source_id, record_values(row._mapping, self.entity),
                              link.base if link is not None else None, self.now,
                              contact_link.id if contact_link is not None else None,
                              link.id if link is not None else None, new=self.rule.when.event == "new_contact",
                              contact=contact, raw=raw)
            new_elsewhere = subject.new and other_id is None  # a new person: its create there is planned
            targets = {side: (contact_id, contact.get("tags") if own is not None else None),
                       other: ("" if new_elsewhere else other_id,
                               contact.get("tags") if new_elsewhere else other_row.tags if other_row is not None
                               else None)}
            found.append((subject, targets))
        return found

    def action(self, subject: Subject, action: Action, targets: dict[str, tuple[str | None, Any]]) -> dict[str, Any]:
        """One action as it would be written for this record, or why nothing would be."""
        spec, rule = action.spec, self.rule
        side: Side = spec.side
        target, tags = targets[side]
        shown: dict[str, Any] = {"kind": action.kind, "side": side, "target": target, "skipped": None}
        where = SIDE_NAMES[side]
        if action.kind == "set":
            value = render(spec.value, subject, rule) if isinstance(spec.value, str) else spec.value
            shown |= {"field": spec.field, "value": value, "text": f"set {spec.field} to {value!r} in {where}"}
        elif action.kind in ("add_tag", "remove_tag"):
            held = {tag.casefold() for tag in tags or [] if isinstance(tag, str)}
            adding = action.kind == "add_tag"
            shown |= {"tag": spec.tag, "text": f"{'add' if adding else 'remove'} tag {spec.tag!r} in {where}"}
            if target is not None and (spec.tag.casefold() in held) == adding:
                shown["skipped"] = f"the contact {'already has' if adding else 'has no'} tag {spec.tag!r} there"
        elif action.kind == "create_task":
            due = due_at(spec.due, self.now, self.profile.zone)
            title = render(spec.title, subject, rule)
            shown |= {"title": title, "body": render(spec.body, subject, rule, lines=True), "due": due,
                      "assignee": render(spec.assignee, subject, rule), "text": f"create a task in {where}: {title!r}"}
        else:
            body = render(spec.body, subject, rule, lines=True)
            shown |= {"body": body, "text": f"create a note in {where}: {body!r}"}
        entity = {"create_task": "task", "create_note": "note"}.get(action.kind)
        mapping = self.profile.entities.get(entity) if entity else None
        if target is None:
            shown["skipped"] = f"the contact is not in {where}: a rule changes what exists"
        elif entity and (mapping is None or not mapping.writes_to(side)):
            shown["skipped"] = f"the profile does not write {entity}s to {where}"
        return shown


def _name(subject: Subject) -> str:
    values = subject.values if subject.entity == "contact" else subject.contact
    person = " ".join(str(values.get(part)) for part in ("first_name", "last_name") if values.get(part)) \
        or values.get("email") or ""
    if subject.entity == "contact":
        return person
    what = subject.values.get("title") or subject.values.get("body") or ""
    return f"{str(what)[:80]}" + (f" ({person})" if person else "")


def preview(conn: sa.Connection, profile: Profile, rule: Rule, now: datetime | None = None, limit: int = LIMIT,
            scan: int = SCAN) -> dict[str, Any]:
    """The first ``limit`` current records ``rule`` would act on if its trigger happened ``now``
    (default: this moment), each with its actions rendered; ``scanned`` of ``total`` records read."""
    now = now or utcnow()
    shown = Preview(conn, profile, rule, now)
    matched: list[dict[str, Any]] = []
    scanned, totals = 0, {side: shown.total(side) for side in shown.sides}
    for side in shown.sides:
        offset = 0
        while len(matched) < limit and scanned < scan:
            rows = shown.chunk(side, offset, min(CHUNK, scan - scanned))
            if not rows:
                break
            offset += len(rows)
            for subject, targets in shown.subjects(side, rows):
                scanned += 1
                if not met(rule.if_, subject):
                    continue
                matched.append({"side": side, "source_id": subject.source_id, "name": _name(subject),
                                "link": subject.link, "actions": [shown.action(subject, action, targets)
                                                                  for action in rule.then]})
                if len(matched) >= limit:
                    break
    total = sum(totals.values())
    return {"rule": rule.name, "entity": shown.entity, "sides": shown.sides, "event_time": now, "records": matched,
            "scanned": scanned, "total": total, "totals": totals, "limit": limit,
            "complete": scanned >= total and len(matched) < limit}

"""The profile's rules inside reconcile (issue 27): after the field mapping planned its writes, each
rule looks at the run's changes (the records whose create is planned, the changed pairs) and its
actions become ordinary outbox rows, attributed to the rule (``outbox.rule``).

Exactly once without bookkeeping of its own: a trigger is a difference from the record's last
synced state, which moves only when load sends the run's writes; until then every run plans the
same rows under the same idempotency keys (the outbox keeps one), and a dry run's rows become due
when a real run plans them again. A contact action folds into the write the mapping already plans
for that contact and side (one write, never two racing), else it is a write of its own. ``rule_fire``
records each firing once, for the console and the report.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.pipeline.reconcile.links import reserve_links
from crm_sync.pipeline.reconcile.planner import Planner, idempotency_key, record_values
from crm_sync.pipeline.rules import Subject, due_at, fire_key, met, render, trigger
from crm_sync.profile import Side
from crm_sync.profile_rules import Action, Rule, is_raw
from crm_sync.timezones import moment_or_none
from crm_sync.warehouse.ops import insert_ignore
from crm_sync.warehouse.outbox import xref_ids_by_key
from crm_sync.warehouse.tables import raw_record, rule_fire, staging_contact, xref

SIDES: tuple[Side, Side] = ("ghl", "app")
log = logging.getLogger(__name__)


@dataclass
class Fire:
    """A rule that fired on a record in this run, and the outbox rows it planned or joined."""

    rule: Rule
    subject: Subject
    event: str
    key: str
    writes: int = 0


def plan_rules(conn: sa.Connection, ctx: RunContext, planners: dict[str, Planner]) -> dict[str, int]:
    """Fire the profile's rules on this run's changes and plan their actions; returns fires per rule."""
    rules = ctx.profile.active_rules
    if not rules or "contact" not in planners:
        return {}
    subjects = Subjects(conn, ctx, planners, reads_raw=any(is_raw(n) for r in rules for n in r.fields_read()))
    fires = [Fire(rule, subject, event, fire_key(ctx.profile.name, rule, event, subject))
             for rule in rules for subject in subjects.of(rule.entity)
             if (event := trigger(rule, subject)) is not None and met(rule.if_, subject)]
    subjects.preload({fire.subject.contact_link for fire in fires})
    actions = Actions(conn, ctx, planners, subjects)
    for fire in fires:
        for number, action in enumerate(fire.rule.then):
            fire.writes += actions.plan(fire, number, action)
    actions.finish()
    # What set a rule off stays unsettled while the rule's writes wait: after a dry run the real run fires
    # it again, to send it; a rule's own contact write, once sent, moves the link's synced state itself
    # (until then a newer write of the mapping may supersede it, and the rule, firing again, joins that one).
    unsettled = {(fire.subject.entity, fire.subject.link) for fire in fires} if ctx.dry_run else \
        {("contact", row["xref_id"]) for row, _ in actions.own if row["idempotency_key"] is not None}
    for plan in planners.values():
        plan.link_updates[:] = [u for u in plan.link_updates if (plan.entity, u["id"]) not in unsettled]
    _record(conn, ctx, fires)
    counts: dict[str, int] = {}
    for fire in fires:
        counts[fire.rule.name] = counts.get(fire.rule.name, 0) + 1
    return counts


def _record(conn: sa.Connection, ctx: RunContext, fires: list[Fire]) -> None:
    """A real firing once (its key), with the run that first planned it; a dry run's firings each under
    the dry run (its own key), so every dry run's report keeps what it would have done."""
    now = utcnow()

    def key(fire: Fire) -> str:
        return hashlib.sha256(f"{fire.key}:{ctx.run_id}".encode()).hexdigest() if ctx.dry_run else fire.key

    insert_ignore(conn, rule_fire, [{
        "profile": ctx.profile.name, "run_id": ctx.run_id, "rule": fire.rule.name, "event": fire.event[:250],
        "entity": fire.subject.entity, "side": fire.subject.side, "source_id": fire.subject.source_id,
        "xref_id": fire.subject.link, "contact_xref_id": fire.subject.contact_link, "fire_key": key(fire),
        "writes": fire.writes, "dry_run": ctx.dry_run, "fired_at": now} for fire in fires], keys=["fire_key"])


def _when(value: Any) -> Any:
    return moment_or_none(None if pd.isna(value) else value) if not isinstance(value, list | dict) else None


class Subjects:
    """The records rules look at in this run, and each contact's state per side (its id there and
    its values, or a create planned there) that actions need."""

    def __init__(self, conn: sa.Connection, ctx: RunContext, planners: dict[str, Planner], reads_raw: bool):
        self.conn, self.ctx, self.reads_raw = conn, ctx, reads_raw
        self.by_entity: dict[str, list[Subject]] = {}
        self.contacts: dict[tuple[int, Side], tuple[str | None, dict[str, Any]]] = {}
        self.bases: dict[int, dict[str, Any]] = {}  # contact link -> its last synced values
        raws = self._raws([row.raw_id for plan in planners.values() for row in self._rows(plan)])
        contact_plan = planners["contact"]
        seen_now = utcnow()  # a person is new to the sync when the sync first sees them: now, for every one
        for link, side, row, _ in contact_plan.created:
            values = record_values(row, "contact")
            self.contacts[(link, side)] = (row.source_id, values)
            self.contacts[(link, "app" if side == "ghl" else "ghl")] = (None, values)  # its create is planned
            self._add(Subject("contact", side, row.source_id, values, None, seen_now, link, link, new=True,
                              contact=values, raw={side: raws.get(row.raw_id)}))
        for link, g, a, base, _ in contact_plan.pairs:
            if base:
                self.bases[link] = base
            ghl_values = record_values(g, "contact")
            app_values, app_base = self._app_view(planners["contact"], record_values(a, "contact"), ghl_values, base)
            by_side = {"ghl": (g, ghl_values, base), "app": (a, app_values, app_base)}
            raw = {side: raws.get(row.raw_id) for side, (row, *_) in by_side.items()}
            for side, (row, values, was) in by_side.items():
                self.contacts[(link, side)] = (row.source_id, values)
                self._add(Subject("contact", side, row.source_id, values, was, self._time(row), link, link,
                                  contact=values, raw=raw))
        children = [(entity, item) for entity, plan in planners.items() if entity != "contact" for item in plan.pairs]
        held = self._contacts_by_id({(side, row.contact_id) for _, item in children
                                     for side, row in zip(SIDES, item[1:3], strict=True)})
        for entity, (link, g, a, base, contact_link) in children:
            raw = {side: raws.get(row.raw_id) for side, row in zip(SIDES, (g, a), strict=True)}
            ghl_values = record_values(g, entity)
            views = {"ghl": (ghl_values, base), "app": self._app_view(planners[entity], record_values(a, entity),
                                                                       ghl_values, base)}
            for side, row in zip(SIDES, (g, a), strict=True):
                values, was = views[side]
                self._add(Subject(entity, side, row.source_id, values, was, self._time(row),
                                  contact_link, link, contact=held.get((side, row.contact_id), {}), raw=raw))

    @staticmethod
    def _app_view(plan: Planner, values: dict[str, Any], ghl_values: dict[str, Any], base: dict[str, Any] | None
                  ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The app's record and last synced state as its rules see them: a field the app does not hold
        (``app: null``, such as tags GHL keeps alone) is GHL's, and never changes on the app (else the
        app's empty value read as every tag removed there, at each change of the record in the app)."""
        lacks = {name: ghl_values.get(name) for name, spec in plan.fields.items() if not spec.app}
        return {**values, **lacks}, None if base is None else {**base, **lacks}

    @staticmethod
    def _rows(plan: Planner) -> list[pd.Series]:
        return [row for *_, row, _ in plan.created] + [row for item in plan.pairs for row in item[1:3]]

    def _add(self, subject: Subject) -> None:
        self.by_entity.setdefault(subject.entity, []).append(subject)

    def of(self, entity: str) -> list[Subject]:
        return self.by_entity.get(entity, [])

    def _time(self, row: pd.Series) -> Any:
        """A change's moment: the record's updated-at (the same in every run), else now."""
        return _when(row.updated_at) or utcnow()

    def _raws(self, ids: list[Any]) -> dict[Any, dict[str, Any]]:
        """Raw payloads by id, read only when a rule reads a side's own field."""
        wanted = sorted({int(i) for i in ids if i is not None and not pd.isna(i)})
        if not self.reads_raw or not wanted:
            return {}
        return {row.id: row.payload for start in range(0, len(wanted), 10_000) for row in self.conn.execute(
            sa.select(raw_record.c.id, raw_record.c.payload).where(raw_record.c.id.in_(wanted[start:start + 10_000])))}

    def _contacts_by_id(self, keys: set[tuple[str, Any]]) -> dict[tuple[str, Any], dict[str, Any]]:
        """The staged contacts children belong to, by (side, id): what ``contact.<field>`` reads."""
        found: dict[tuple[str, Any], dict[str, Any]] = {}
        for side in SIDES:
            ids = sorted({str(i) for s, i in keys if s == side and i is not None and not pd.isna(i)})
            if ids:
                rows = pd.read_sql(sa.select(staging_contact).where(
                    staging_contact.c.profile == self.ctx.profile.name, staging_contact.c.side == side,
                    staging_contact.c.source_id.in_(ids)), self.conn)
                found |= {(side, row.source_id): record_values(row, "contact") for _, row in rows.iterrows()}
        return found

    def preload(self, links: set[int | None]) -> None:
        """Each side's id and staged values of the contacts ``links`` name that this run's changes did not
        bring (a child's contact): read in one pass, not one query per firing."""
        wanted = sorted(link for link in links if link is not None
                        and any((link, side) not in self.contacts for side in SIDES))
        ids: dict[tuple[int, Side], Any] = {}
        for start in range(0, len(wanted), 10_000):
            for row in self.conn.execute(sa.select(xref.c.id, xref.c.ghl_id, xref.c.app_id).where(
                    xref.c.id.in_(wanted[start:start + 10_000]))):
                ids |= {(row.id, side): getattr(row, f"{side}_id") for side in SIDES}
        held = self._contacts_by_id({(side, found) for (_, side), found in ids.items() if found is not None})
        for link in wanted:
            for side in SIDES:
                found = ids.get((link, side))
                self.contacts.setdefault((link, side), (found, held.get((side, found), {})) if found is not None
                                         else (None, {"_absent": True}))

    def contact_on(self, link: int, side: Side) -> tuple[str | None, dict[str, Any]] | None:
        """The contact's id and values on ``side`` (id None: its create there is planned in this run);
        None: the contact is not on that side."""
        if (link, side) not in self.contacts:
            self.preload({link})
        held = self.contacts[(link, side)]
        return None if held[1].get("_absent") else held


class Actions:
    """Turns fired rules' actions into outbox rows in the planners (contacts, tasks, notes)."""

    def __init__(self, conn: sa.Connection, ctx: RunContext, planners: dict[str, Planner], subjects: Subjects):
        self.conn, self.ctx, self.planners, self.subjects = conn, ctx, planners, subjects
        self.contact_rows: dict[tuple[int, Side], dict[str, Any]] = {}  # the write a contact action joins
        self.own: list[tuple[dict[str, Any], list[str]]] = []  # contact writes of rules alone, and their fires
        self.own_fires: dict[int, list[str]] = {}  # id of such a write -> its fires (the list in ``own``)
        self.creates: dict[tuple, list[dict[str, Any]]] = {}  # children created: one link per group
        # The mapping's contact writes and settled links, by link: looked up once per action, so indexed
        # once (a first sync's new-contact rule acts on every person; a scan each time is quadratic).
        plan = planners["contact"]
        self.mapping_writes: dict[int, list[dict[str, Any]]] = {}
        for row in plan.outbox:
            if row["op"] in ("create", "update"):
                self.mapping_writes.setdefault(row["xref_id"], []).append(row)
        self.settled = {update["id"]: update["base"] for update in plan.link_updates}  # the last one wins

    def plan(self, fire: Fire, number: int, action: Action) -> int:
        """Plan one action; returns the writes it made (0: nothing to do, or no contact on that side)."""
        link = fire.subject.contact_link
        side: Side = action.spec.side
        if link is None or self.subjects.contact_on(link, side) is None:
            return 0  # a contact on one side only: a rule changes what exists
        if action.kind in ("create_task", "create_note"):
            return self._create(fire, number, action, link, side)
        return self._contact(fire, action, link, side)

    def _contact_row(self, fire: Fire, link: int, side: Side) -> dict[str, Any] | None:
        """The contact's write to ``side`` in this run: the mapping's, or a new one of the rule's own."""
        if (link, side) in self.contact_rows:
            return self.contact_rows[(link, side)]
        writes = self.mapping_writes.get(link, [])
        row = next((row for row in reversed(writes) if row["side"] == side), None)
        if row is None:
            target_id, values = self.subjects.contact_on(link, side) or (None, {})
            if target_id is None:
                return None
            # What the link records as synced after this write: the state this run settles it at (the
            # mapping's merge, also when it writes only the other side: else the old base came back).
            synced = self.settled.get(link) or next((r["merged"] for r in reversed(writes) if r["rule"] is None),
                                                    None) or self.subjects.bases.get(link) or values
            row = {"profile": self.ctx.profile.name, "run_id": self.ctx.run_id, "entity": "contact", "side": side,
                   "op": "update", "xref_id": link, "contact_xref_id": None, "target_id": target_id, "payload": {},
                   "merged": dict(synced), "source_hash": None, "decisions": [], "before": {}, "status": "pending",
                   "attempts": 0, "created_at": utcnow(), "rule": None, "idempotency_key": None}
            self.own.append((row, []))
            self.own_fires[id(row)] = self.own[-1][1]
            self.planners["contact"].outbox.append(row)
        self.contact_rows[(link, side)] = row
        return row

    def _contact(self, fire: Fire, action: Action, link: int, side: Side) -> int:
        made = self._contact_on(fire, action, link, side)
        if action.kind in ("add_tag", "remove_tag"):
            # Tags synced both ways: the other side gets the change in the same write round, else the
            # next merge of the pair would read the side without it as a removal (or an addition).
            mapping = self.planners["contact"].mapping
            tags, other = mapping.fields.get("tags"), "app" if side == "ghl" else "ghl"
            if tags is not None and tags.app and mapping.writes_to(other) \
                    and self.subjects.contact_on(link, other) is not None:
                made += self._contact_on(fire, action, link, other)
        return made

    def _contact_on(self, fire: Fire, action: Action, link: int, side: Side) -> int:
        row = self._contact_row(fire, link, side)
        if row is None:
            return 0
        spec, name = action.spec, fire.rule.name
        if action.kind == "set":
            value = render(spec.value, fire.subject, fire.rule) if isinstance(spec.value, str) else spec.value
            row["payload"] = {**row["payload"], "@set": {**row["payload"].get("@set", {}), spec.field: value}}
            field, shown = f"{side}:{spec.field}", value
        else:
            held = row["payload"]["tags"] if "tags" in row["payload"] else row["merged"].get("tags")
            current = list(held or [])
            folded = {tag.casefold() for tag in current}
            if action.kind == "add_tag" and spec.tag.casefold() not in folded:
                tags = sorted([*current, spec.tag])
            elif action.kind == "remove_tag" and spec.tag.casefold() in folded:
                tags = [tag for tag in current if tag.casefold() != spec.tag.casefold()]
            else:
                return 0  # the tag is already there (or gone): nothing to write
            if row["before"] is not None and "tags" not in row["before"]:
                row["before"] = {**row["before"], "tags": current}
            row["payload"] = {**row["payload"], "tags": tags}
            row["merged"] = {**row["merged"], "tags": tags}
            field, shown = "tags", f"{action.kind.replace('_', ' ')} {spec.tag}"
        row["decisions"] = [*row["decisions"], {"field": field, "winner": "rule", "reason": f"rule {name}: "
                                                f"{fire.event}", "ghl": "", "app": "", "value": shown}]
        row["rule"] = ",".join(sorted({*(row["rule"] or "").split(","), name} - {""}))
        if id(row) in self.own_fires:
            self.own_fires[id(row)].append(fire.key)
        return 1

    def _create(self, fire: Fire, number: int, action: Action, link: int, side: Side) -> int:
        entity = "task" if action.kind == "create_task" else "note"
        plan = self.planners.get(entity)
        if plan is None or not plan.mapping.writes_to(side):
            return 0
        spec, subject, rule = action.spec, fire.subject, fire.rule
        if entity == "task":
            title = render(spec.title, subject, rule)
            if not title:  # one record's empty fields must not stop the run: this action is skipped, named
                log.warning("rule %r then.%d.create_task: the title renders empty for %s %s:%s; no task created",
                            rule.name, number, subject.entity, subject.side, subject.source_id)
                return 0
            due = due_at(spec.due, subject.event_time, self.ctx.profile.zone)
            values = {"title": title, "body": render(spec.body, subject, rule, lines=True), "completed": False,
                      "due_date": due.strftime("%Y-%m-%dT%H:%M:%SZ"), "assignee": render(spec.assignee, subject, rule)}
            group = (fire.key, entity, title) if rule.legacy_task is None else (link, entity, rule.legacy_task)
        else:
            values = {"body": render(spec.body, subject, rule, lines=True)}
            group = (fire.key, entity, values["body"])
        merged = {k: v for k, v in values.items() if v not in (None, "") and k in plan.fields}
        other: Side = "app" if side == "ghl" else "ghl"
        mirrored = rule.legacy_task is None and plan.mapping.writes_to(other) \
            and self.subjects.contact_on(link, other) is not None  # the mapping would copy it next run: now
        made = 0
        for target in [side, other] if mirrored else [side]:
            if any(row["side"] == target for row in self.creates.get(group, [])):
                continue  # the rule creates it there itself
            key = idempotency_key(self.ctx, entity, target, "template", (link, rule.legacy_task), (), {}) \
                if rule.legacy_task is not None else \
                idempotency_key(self.ctx, entity, target, "rule", (fire.key, number), (), {})
            self.creates.setdefault(group, []).append({
                "profile": self.ctx.profile.name, "run_id": self.ctx.run_id, "entity": entity, "side": target,
                "op": "create", "xref_id": None, "contact_xref_id": link, "target_id": None,
                "payload": plan.accepted(target, merged), "merged": merged, "source_hash": None, "before": None,
                "status": "pending", "attempts": 0, "created_at": utcnow(), "rule": rule.name,
                "idempotency_key": key, "decisions": [{"field": "*", "winner": "rule", "reason": f"rule {rule.name}: "
                                                       f"{fire.event}", "ghl": "", "app": "",
                                                       "value": values.get("title") or values["body"]}]})
            made += 1
        return made

    def finish(self) -> None:
        """Key the rules' own contact writes (by their firings: the same in every run) and give each
        group of created children one link, the one it got when first planned (a dry run, a failed load)."""
        for row in self.contact_rows.values():  # a mapping write a rule joined: keyed with what the rule added
            if id(row) not in self.own_fires and row["rule"]:
                row["idempotency_key"] = idempotency_key(self.ctx, "contact", row["side"], row["op"],
                                                         (row["idempotency_key"], row["rule"]), (), row["payload"])
        for row, keys in self.own:
            if row["payload"]:  # else every action found nothing to change: the row goes
                row["idempotency_key"] = idempotency_key(self.ctx, "contact", row["side"], "rule", (row["xref_id"],),
                                                         tuple(sorted(keys)), row["payload"])
        self.planners["contact"].outbox[:] = [row for row in self.planners["contact"].outbox
                                              if row["idempotency_key"] is not None]
        groups = list(self.creates.values())
        known = xref_ids_by_key(self.conn, [row["idempotency_key"] for rows in groups for row in rows])
        fresh = [rows for rows in groups if not any(row["idempotency_key"] in known for row in rows)]
        by_entity: dict[str, list[list[dict[str, Any]]]] = {}
        for rows in fresh:
            by_entity.setdefault(rows[0]["entity"], []).append(rows)
        for entity, entity_groups in by_entity.items():
            for rows, link in zip(entity_groups, reserve_links(self.conn, self.ctx, entity, len(entity_groups)),
                                  strict=True):
                for row in rows:
                    row["xref_id"] = link
        for rows in groups:
            for row in rows:
                row["xref_id"] = known.get(row["idempotency_key"], row["xref_id"])
                self.planners[row["entity"]].outbox.append(row)

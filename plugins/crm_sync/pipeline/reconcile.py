"""Reconcile: decide every write, and put it in the outbox. Nothing is sent from here.

Contacts first, then tasks, notes and appointments (they link through their contact):

1. Candidates: staged records with no identity link, or whose hash differs from the one
   the link last recorded for their side (our own echoes match it, so they drop out).
2. Identity for unlinked contacts: the other side's id a record keeps (the profile's
   ``external_id``), then normalised email, then E.164 phone (only when the emails do not
   contradict each other). A record that matches more than one, or is matched by more than
   one, or whose match names another first name, is quarantined as ``ambiguous_match``,
   never guessed, and listed in the review queue (crm_sync.review); people's decisions on
   such pairs come first: ``link`` pairs them, ``apart`` keeps the pair from ever joining.
   Unlinked children pair up under the same linked contact by their natural key (a task's
   title, a note's body, an appointment's start) when that is unique on both sides.
3. Each linked or newly matched pair is merged field by field (crm_sync.pipeline.merge);
   each side gets a patch of just the fields it lacks. Unmatched records are created on
   the other side; a child whose contact is not linked yet waits for a later run. A record
   deleted on the app (its soft-delete marker), or a linked child missing from a complete list
   of its GHL contact's children, follows the profile's ``on_delete``. Links with writes still
   pending wait for load to finish them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_sync import review
from crm_sync.pipeline import inbox
from crm_sync.pipeline.context import RunContext, log_step, utcnow
from crm_sync.pipeline.matching import diff, external_matches, find_matches
from crm_sync.pipeline.merge import merge
from crm_sync.pipeline.stage import quarantine_row
from crm_sync.profile import CANONICAL, GHL_READ_ONLY, NewContactTask, Side
from crm_sync.records import Broken
from crm_sync.warehouse.lock import profile_lock
from crm_sync.warehouse.ops import insert_ignore
from crm_sync.warehouse.tables import (
    outbox,
    quarantine,
    raw_record,
    run_log,
    staging_contact,
    staging_record,
    xref,
)

OTHER: dict[Side, Side] = {"ghl": "app", "app": "ghl"}
NATURAL_KEY = {"task": "title", "note": "body", "appointment": "start"}
KEYS_PER_QUERY = 10_000


def _value(value: Any) -> Any:
    if isinstance(value, list | dict):
        return value
    return None if pd.isna(value) else value


def _record(row: pd.Series, entity: str) -> dict[str, Any]:
    if entity == "contact":
        values = {name: _value(row[name]) for name in CANONICAL["contact"]}
    else:
        values = dict(row["fields"])
    return {**values, "updated_at": _value(row["updated_at"])}


def _idempotency_key(ctx: RunContext, entity: str, side: Side, op: str, ids: tuple, hashes: tuple,
                     payload: dict) -> str:
    material = json.dumps([ctx.profile.name, entity, side, op, ids, hashes, payload], sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()


class Planner:
    """Collects the outbox rows and link changes of one entity's reconcile."""

    def __init__(self, ctx: RunContext, entity: str):
        self.ctx, self.entity = ctx, entity
        self.mapping = ctx.profile.entities[entity]
        self.fields = ctx.profile.fields(entity)
        self.outbox: list[dict[str, Any]] = []
        self.link_updates: list[dict[str, Any]] = []

    def write(self, side: Side, op: str, xref_id: int, target_id: str | None, payload: dict, merged: dict,
              source_hash: str | None, ids: tuple, hashes: tuple, decisions: list,
              contact_xref_id: int | None = None) -> None:
        if op in ("create", "update"):
            payload = self.accepted(side, payload)
            if not payload:
                return
        if not self.mapping.writes_to(side):
            return
        self.outbox.append({
            "profile": self.ctx.profile.name, "run_id": self.ctx.run_id, "entity": self.entity, "side": side,
            "op": op, "xref_id": xref_id, "contact_xref_id": contact_xref_id, "target_id": target_id,
            "payload": payload, "merged": merged, "source_hash": source_hash, "decisions": decisions,
            "status": "pending", "attempts": 0, "created_at": utcnow(),
            "idempotency_key": _idempotency_key(self.ctx, self.entity, side, op, ids, hashes, payload),
        })

    def accepted(self, side: Side, values: dict[str, Any]) -> dict[str, Any]:
        """Only the fields that side holds and accepts."""
        return {k: v for k, v in values.items() if k in self.fields and getattr(self.fields[k], side)
                and (side == "app" or (self.entity, k) not in GHL_READ_ONLY)}

    def pair(self, xref_id: int, g: pd.Series, a: pd.Series, base: dict | None,
             contact_xref_id: int | None = None) -> None:
        ghl_rec, app_rec = _record(g, self.entity), _record(a, self.entity)
        self.same_full_name(ghl_rec, app_rec)
        ids, hashes = (g.source_id, a.source_id), (g.content_hash, a.content_hash)
        if a.deleted:
            self.deleted(xref_id, g, a, contact_xref_id)
            return
        merged = merge(ghl_rec, app_rec, base, self.fields, self.mapping.conflict, self.entity)
        ghl_patch, app_patch = merged.patch_for(ghl_rec), merged.patch_for(app_rec)
        ghl_patch = {k: v for k, v in ghl_patch.items() if (self.entity, k) not in GHL_READ_ONLY}
        if not ghl_patch and not app_patch:
            self.link_updates.append({"id": xref_id, "ghl_hash": g.content_hash, "app_hash": a.content_hash,
                                      "base": merged.values})
            return
        self.write("ghl", "update", xref_id, g.source_id, ghl_patch, merged.values, a.content_hash, ids, hashes,
                   merged.decisions, contact_xref_id)
        self.write("app", "update", xref_id, a.source_id, app_patch, merged.values, g.content_hash, ids, hashes,
                   merged.decisions, contact_xref_id)

    def settle_identical(self, links: pd.DataFrame, ghl: pd.DataFrame, app: pd.DataFrame) -> pd.DataFrame:
        """Links whose two records hold the same value in every mapped field need no write: their
        hashes and base are recorded here in bulk, column by column (matching.diff), so the per-pair
        merge runs only for pairs that differ. Returns those links, whose records are both staged."""
        links = links[links.ghl_id.isin(ghl.index) & links.app_id.isin(app.index)]
        if links.empty:
            return links
        names = list(self.fields)
        compared = diff(ghl, app, links, tuple(names)).links
        differs = compared.differs.to_numpy() | app.deleted.astype(bool).loc[compared.app_id].to_numpy()
        for name, spec in self.fields.items():  # both empty with a fallback: the fallback is written
            if spec.fallback is not None:
                differs |= ghl[name].loc[compared.ghl_id].isna().to_numpy() & app[name].loc[compared.app_id].isna().to_numpy()
        same = compared[~differs]  # diff keeps the links' order: every link here has both records
        held = ghl.loc[same.ghl_id, names].astype(object)
        bases = held.where(held.notna(), None).to_dict("records")
        self.link_updates += [{"id": int(i), "ghl_hash": gh, "app_hash": ah, "base": base} for i, gh, ah, base in zip(
            links.id.to_numpy()[~differs], ghl.content_hash.loc[same.ghl_id], app.content_hash.loc[same.app_id],
            bases, strict=True)]
        return links[differs]

    def same_full_name(self, ghl_rec: dict[str, Any], app_rec: dict[str, Any]) -> None:
        """An app that keeps one full-name field cannot say where a first name ends ("Ludwig van"
        / "Beethoven"); when both sides hold the same full name, GHL's split is kept."""
        parts = [n for n in ("first_name", "last_name") if n in self.fields and self.fields[n].part]
        if len(parts) == 2:
            def full(rec: dict[str, Any]) -> str:
                return " ".join(p for p in (rec.get("first_name"), rec.get("last_name")) if p)

            if full(ghl_rec) == full(app_rec):
                app_rec.update(first_name=ghl_rec.get("first_name"), last_name=ghl_rec.get("last_name"))

    def deleted(self, xref_id: int, g: pd.Series, a: pd.Series, contact_xref_id: int | None,
                gone: Side = "app") -> None:
        """Deleted on one side (the app's soft-delete marker, or a child missing from GHL's complete list):
        the other side archives it (its soft form), deletes it, or keeps it, as ``on_delete`` says."""
        action, target = self.mapping.on_delete, OTHER[gone]
        ids, hashes = (g.source_id, a.source_id), (g.content_hash, a.content_hash)
        kept = a if gone == "ghl" else g
        held = {name: value for name, value in _record(kept, self.entity).items() if name in self.fields}
        decision = [{"field": "*", "winner": gone, "reason": f"deleted on {self.ctx.side_name(gone)}: "
                     f"on_delete {action}", gone: "deleted", target: "", "value": action}]
        op, payload = ("delete", {"deleted": True}) if action == "delete" else \
            self.archived(target, held, gone) if action == "archive" else (None, {})
        if op is None or not self.mapping.writes_to(target):
            self.link_updates.append({"id": xref_id, "ghl_hash": g.content_hash, "app_hash": a.content_hash,
                                      "base": held})
            return
        source = (a if gone == "app" else g).content_hash
        self.write(target, op, xref_id, kept.source_id, payload, {**held, **payload} if op == "update" else held,
                   source, ids, hashes, decision, contact_xref_id)

    def archived(self, target: Side, held: dict[str, Any], gone: Side) -> tuple[str | None, dict[str, Any]]:
        """The soft form of a delete on ``target``: GHL's archive tag for a contact; the app's own delete
        when the profile says it is soft (a ``deleted`` marker); else a task completed, an appointment
        cancelled, a note's body marked. None: ``target`` has no soft form (an app's contact without one)."""
        api = self.ctx.profile.app.entities.get(self.entity) if self.ctx.profile.app.kind == "rest" else None
        if target == "app" and api is not None and api.deleted is not None and api.delete is not None:
            return "delete", {"deleted": True}
        if self.entity == "contact":
            return ("archive", {"tags": [self.mapping.archive_tag]}) if target == "ghl" else (None, {})
        mark = f"[deleted in {self.ctx.side_name(gone)}]"
        form = {"task": {"completed": True}, "appointment": {"status": "cancelled"},
                "note": {"body": f"{mark} {held.get('body') or ''}".strip()}}[self.entity]
        if self.entity == "note" and str(held.get("body") or "").startswith(mark):
            return None, {}
        return "update", form

    def create(self, xref_id: int, source: Side, row: pd.Series, contact_xref_id: int | None = None) -> None:
        if row.deleted:
            return  # never bring a deleted record to life on the other side
        record = _record(row, self.entity)
        merged = merge(record, record, None, self.fields, self.mapping.conflict, self.entity)
        payload = {k: v for k, v in merged.values.items() if v is not None}
        ids, hashes = (source, row.source_id), (row.content_hash,)
        self.write(OTHER[source], "create", xref_id, None, payload, merged.values, row.content_hash, ids, hashes,
                   merged.decisions, contact_xref_id)
        # Fallback values reach the source side too, so both end up holding the same record.
        self.write(source, "update", xref_id, row.source_id, merged.patch_for(record), merged.values,
                   row.content_hash, ids, hashes, merged.decisions, contact_xref_id)

    def template_tasks(self, conn: sa.Connection, created: list[tuple[int, dict[str, Any]]],
                       tasks: Planner) -> None:
        """The profile's tasks for each person the app brings to GHL (a lead's first call, a reminder),
        given as (contact link, record): created in GHL and, when tasks sync to the app, in the app in
        the same load, under one link made here. A contact create planned again (its first one failed)
        plans the same tasks again: those already in the outbox get no second link."""
        sides: list[Side] = ["ghl", "app"] if tasks.mapping.writes_to("app") else ["ghl"]
        now = utcnow()  # one clock for both sides: their due dates are the same
        planned = [[self._template_row(tasks, side, contact_link, index, template, now) for side in sides]
                   for contact_link, record in created
                   for index, template in enumerate(self.mapping.new_contact_tasks)
                   if not template.only_if or record.get(template.only_if)]
        keys = [row["idempotency_key"] for rows in planned for row in rows]
        known = {key: xref_id for chunk in range(0, len(keys), KEYS_PER_QUERY)  # SQLite's bind limit
                 for key, xref_id in conn.execute(sa.select(outbox.c.idempotency_key, outbox.c.xref_id).where(
                     outbox.c.idempotency_key.in_(keys[chunk:chunk + KEYS_PER_QUERY])))}
        fresh = [rows for rows in planned if not any(row["idempotency_key"] in known for row in rows)]
        for rows, link_id in zip(fresh, _new_links(conn, self.ctx, "task", len(fresh)), strict=True):
            for row in rows:
                row["xref_id"] = link_id
        for rows in planned:  # planned before: queued again as they are (a dry run's rows become due)
            for row in rows:
                if row["idempotency_key"] in known:
                    row["xref_id"] = known[row["idempotency_key"]]
        tasks.outbox += [row for rows in planned for row in rows if row["xref_id"] is not None]

    def _template_row(self, tasks: Planner, side: Side, contact_link: int, index: int,
                      template: NewContactTask, now: datetime) -> dict[str, Any]:
        """One side's create of a ``new_contact_tasks`` template; its key is the same in every run."""
        due = (now + timedelta(hours=template.due_in_hours)).replace(microsecond=0)
        task = {"title": template.title, "body": template.body, "completed": False,
                "due_date": due.strftime("%Y-%m-%dT%H:%M:%SZ")}
        merged = {k: v for k, v in task.items() if v is not None and k in tasks.fields}
        return {
            "profile": self.ctx.profile.name, "run_id": self.ctx.run_id, "entity": "task", "side": side,
            "op": "create", "xref_id": None, "contact_xref_id": contact_link, "target_id": None,
            "payload": tasks.accepted(side, merged), "merged": merged, "source_hash": None, "status": "pending",
            "attempts": 0, "created_at": now,
            "decisions": [{"field": "*", "winner": "profile", "reason": "new_contact_tasks template",
                           "ghl": "", "app": "", "value": template.title}],
            "idempotency_key": _idempotency_key(self.ctx, "task", side, "template", (contact_link, index), (), {}),
        }


def _links(conn: sa.Connection, ctx: RunContext, entity: str) -> pd.DataFrame:
    return pd.read_sql(sa.select(xref).where(xref.c.profile == ctx.profile.name, xref.c.entity == entity), conn)


def _busy(conn: sa.Connection, ctx: RunContext) -> set[int]:
    return {r.xref_id for r in conn.execute(sa.select(outbox.c.xref_id).where(
        outbox.c.profile == ctx.profile.name, outbox.c.status == "pending"))}


def _insert_links(conn: sa.Connection, ctx: RunContext, entity: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(sa.insert(xref), [{"profile": ctx.profile.name, "entity": entity, "ghl_id": None,
                                        "app_id": None, "updated_at": utcnow(), **row} for row in rows])


def _new_links(conn: sa.Connection, ctx: RunContext, entity: str, count: int) -> list[int]:
    """Ids of ``count`` new links with neither side's id yet (a write planned here will give them one)."""
    if not count:
        return []
    rows = [{"profile": ctx.profile.name, "entity": entity, "updated_at": utcnow()} for _ in range(count)]
    return list(conn.execute(sa.insert(xref).returning(xref.c.id, sort_by_parameter_order=True), rows).scalars())


def _link_ids(conn: sa.Connection, ctx: RunContext, entity: str) -> dict[tuple, int]:
    return {(r.ghl_id, r.app_id): r.id for r in conn.execute(sa.select(xref.c.id, xref.c.ghl_id, xref.c.app_id)
                                                             .where(xref.c.profile == ctx.profile.name,
                                                                    xref.c.entity == entity))}


def _changed_links(links: pd.DataFrame, ghl: pd.DataFrame, app: pd.DataFrame, busy: set[int]) -> pd.DataFrame:
    """Links where either side moved past the hash we last recorded."""
    by_ghl = links.dropna(subset=["ghl_id"]).set_index("ghl_id")
    by_app = links.dropna(subset=["app_id"]).set_index("app_id")
    changed_ghl = ghl.join(by_ghl[["id", "ghl_hash"]], how="inner")
    changed_app = app.join(by_app[["id", "app_hash"]], how="inner")
    touched = set(changed_ghl["id"][changed_ghl.content_hash != changed_ghl.ghl_hash]) | \
        set(changed_app["id"][changed_app.content_hash != changed_app.app_hash])
    return links[links.id.isin(touched - busy)]


def _contacts(conn: sa.Connection, ctx: RunContext, plan: Planner, tasks: Planner | None) -> dict[str, int]:
    staged = pd.read_sql(sa.select(staging_contact).where(staging_contact.c.profile == ctx.profile.name), conn)
    unlinked = review.drop_undone_links(conn, ctx.profile.name)
    links, busy = _links(conn, ctx, "contact"), _busy(conn, ctx)
    ghl = staged[staged.side == "ghl"].set_index("source_id", drop=False)
    app = staged[staged.side == "app"].set_index("source_id", drop=False)
    ghl = _contacts_deleted_in_ghl(conn, ctx, plan, links, ghl, app)
    changed = _changed_links(links, ghl, app, busy)
    for link in plan.settle_identical(changed, ghl, app).itertuples():
        base = link.base if isinstance(link.base, dict) else None  # never synced yet: no base
        plan.pair(int(link.id), ghl.loc[link.ghl_id], app.loc[link.app_id], base)

    lone_ghl = ghl[~ghl.source_id.isin(links.ghl_id.dropna())]
    lone_app = app[~app.source_id.isin(links.app_id.dropna()) & ~app.deleted.astype(bool)]
    decided = review.active_decisions(conn, ctx.profile.name)
    pairs, chosen, ambiguous = _identify(lone_ghl, lone_app, links, decided, ghl, app)
    linked_now = chosen + pairs
    kept_apart = _kept_apart(lone_ghl, lone_app, linked_now, ambiguous, decided, ghl, app, plan)
    new_links = [{"ghl_id": g, "app_id": a} for g, a in linked_now]
    matched = {("ghl", g) for g, _ in linked_now} | {("app", a) for _, a in linked_now}
    ambiguous.update(_clashes(lone_ghl, lone_app, ghl, app, links, linked_now, {*matched, *ambiguous, *kept_apart},
                              plan))
    for side, lone in (("ghl", lone_ghl), ("app", lone_app)):
        for source_id in lone.source_id:
            if (side, source_id) not in matched and (side, source_id) not in ambiguous \
                    and (side, source_id) not in kept_apart and plan.mapping.writes_to(OTHER[side]):
                new_links.append({f"{side}_id": source_id})
    _insert_links(conn, ctx, "contact", new_links)
    link_ids = _link_ids(conn, ctx, "contact")
    matched_links = pd.DataFrame({"id": [link_ids[p] for p in linked_now], "ghl_id": [g for g, _ in linked_now],
                                  "app_id": [a for _, a in linked_now]})
    for link in plan.settle_identical(matched_links, ghl, app).itertuples():
        plan.pair(int(link.id), ghl.loc[link.ghl_id], app.loc[link.app_id], None)
    created_in_ghl: list[tuple[int, dict[str, Any]]] = []
    for link_id, side, row in _one_sided(link_ids, busy, ghl, app):
        before = len(plan.outbox)
        plan.create(link_id, side, row)
        if any(r["side"] == "ghl" and r["op"] == "create" for r in plan.outbox[before:]):
            created_in_ghl.append((link_id, _record(row, "contact")))
    if tasks is not None:
        plan.template_tasks(conn, created_in_ghl, tasks)
    first_time = _first_honoured(decided, chosen, link_ids, lone_ghl, lone_app)
    review.mark_applied(conn, ctx.profile.name, ctx.run_id, first_time)
    review.replace_candidates(conn, ctx.profile.name, ctx.run_id, ambiguous)

    # An ambiguous record is quarantined again only when it changed; it stays unlinked until reviewed.
    # A record kept apart but not created also when the decision is new.
    newly_apart = set(decided.id[decided.id.isin(first_time)])
    quarantined = [quarantine_row(ctx, side, int(row.raw_id or 0), source_id, Broken(
        "ambiguous_match", f"{side}:{source_id} has no unambiguous match, so it stays unlinked until reviewed "
                           f"(python -m crm_sync.cli review list --profile {ctx.profile.name}); "
                           f"candidates: {', '.join(sorted(set(c)))}"))
        for (side, source_id), c in ambiguous.items()
        for row in [(ghl if side == "ghl" else app).loc[source_id]] if row.run_id == ctx.run_id]
    quarantined += [quarantine_row(ctx, side, int(row.raw_id or 0), source_id, Broken("kept_apart", detail))
                    for (side, source_id), (decision_id, detail) in kept_apart.items()
                    for row in [(ghl if side == "ghl" else app).loc[source_id]]
                    if row.run_id == ctx.run_id or decision_id in newly_apart]
    insert_ignore(conn, quarantine, quarantined, keys=["profile", "run_id", "raw_id", "rule"])
    return {"new_matches": len(pairs), "linked_by_review": len(chosen), "unlinked_by_review": unlinked,
            "ambiguous": len(ambiguous), "kept_apart_not_created": len(kept_apart)}


def _identify(lone_ghl: pd.DataFrame, lone_app: pd.DataFrame, links: pd.DataFrame, decided: pd.DataFrame,
              ghl: pd.DataFrame, app: pd.DataFrame
              ) -> tuple[list[tuple[str, str]], list[tuple[str, str]], dict[tuple[str, str], list]]:
    """(pairs matched by the rules, pairs linked by review now, ambiguous records) among unlinked
    contacts. A pair kept apart by review never matches. The records of an active ``link`` decision
    take part in matching as candidates (linked or not), so any other record that matches one of
    them stays in review, never linked or created past it."""
    link, apart = decided[decided.decision == "link"], decided[decided.decision == "apart"]
    held_g = ghl[ghl.source_id.isin(link.ghl_id)]
    held_a = app[app.source_id.isin(link.app_id) & ~app.deleted.astype(bool)]
    cand_g = pd.concat([lone_ghl, held_g[~held_g.source_id.isin(lone_ghl.source_id)]])
    cand_a = pd.concat([lone_app, held_a[~held_a.source_id.isin(lone_app.source_id)]])
    others = links[~links.ghl_id.isin(held_g.source_id) & ~links.app_id.isin(held_a.source_id)]
    pairs, ambiguous = external_matches(cand_g, cand_a, others, apart)
    decided_keys = {*ambiguous, *(("ghl", g) for g, _ in pairs), *(("app", a) for _, a in pairs)}
    by_key, ambiguous_by_key = find_matches(_undecided(cand_g, "ghl", decided_keys),
                                            _undecided(cand_a, "app", decided_keys), apart)
    pairs += by_key
    ambiguous.update(ambiguous_by_key)
    held = {*(("ghl", g) for g in held_g.source_id), *(("app", a) for a in held_a.source_id)}
    for key in held:
        ambiguous.pop(key, None)
    found = pd.DataFrame(pairs, columns=["g", "a"], dtype=object)
    touches = found.g.isin(held_g.source_id) | found.a.isin(held_a.source_id)
    for g, a in found[touches & ~(found.g.isin(held_g.source_id) & found.a.isin(held_a.source_id))].itertuples(
            index=False):  # rare: a record matching one linked by review to another record waits for review
        side, own, other = ("app", a, f"ghl:{g}") if ("ghl", g) in held else ("ghl", g, f"app:{a}")
        ambiguous.setdefault((side, own), []).append(f"{other} by review: linked to another record")
    chosen = [(g, a) for g, a in zip(link.ghl_id, link.app_id, strict=True)
              if g in lone_ghl.index and a in lone_app.index]
    return list(found[~touches].itertuples(index=False, name=None)), chosen, ambiguous


def _kept_apart(lone_ghl: pd.DataFrame, lone_app: pd.DataFrame, pairs: list[tuple[str, str]],
                ambiguous: dict[tuple[str, str], list], decided: pd.DataFrame, ghl: pd.DataFrame,
                app: pd.DataFrame, plan: Planner) -> dict[tuple[str, str], tuple[int, str]]:
    """Records left alone by a keep-apart decision that must not be created on the other side:
    (side, id) -> (decision id, why). GHL keeps one contact per email and phone (its upsert would
    land on the record it was kept apart from), and an app create is looked up by email first."""
    apart = decided[decided.decision == "apart"]
    paired = {("ghl", g) for g, _ in pairs} | {("app", a) for _, a in pairs}
    out: dict[tuple[str, str], tuple[int, str]] = {}
    for side, lone, other in (("ghl", lone_ghl, app), ("app", lone_app, ghl)):
        target = OTHER[side]
        if not plan.mapping.writes_to(target):
            continue
        mine = apart[apart[f"{side}_id"].isin(lone.source_id)].drop_duplicates(f"{side}_id")
        keys = ("email", "phone") if target == "ghl" else ("email",)
        for decision in mine.itertuples():  # one per decision: people decide a handful, not a million
            source_id, partner = getattr(decision, f"{side}_id"), getattr(decision, f"{target}_id")
            if (side, source_id) in paired or (side, source_id) in ambiguous:
                continue
            row = lone.loc[source_id]
            shared = [k for k in keys if pd.notna(row[k]) and (other[k] == row[k]).any()]
            if shared:
                out[(side, source_id)] = (int(decision.id), (
                    f"{side}:{source_id} is kept apart from {target}:{partner} (review decision {decision.id}) "
                    f"and is not created in {plan.ctx.side_name(target)}: a record there has the same "
                    f"{' and '.join(shared)}, which a create would land on"))
    return out


def _clashes(lone_ghl: pd.DataFrame, lone_app: pd.DataFrame, ghl: pd.DataFrame, app: pd.DataFrame,
             links: pd.DataFrame, linked_now: list[tuple[str, str]], settled: set[tuple[str, str]], plan: Planner
             ) -> dict[tuple[str, str], list[str]]:
    """Records to be created on the other side whose create would land on another record: GHL's
    upsert matches an existing contact by email or phone, and an app create is looked up by email
    first. So a record sharing such a key with a record there that is linked to someone else, or with
    another record to be created, would overwrite that person: it waits for review, ambiguous."""
    found: dict[tuple[str, str], list[str]] = {}
    for side, lone, other, at in (("ghl", lone_ghl, app, 1), ("app", lone_app, ghl, 0)):
        target = OTHER[side]
        if not plan.mapping.writes_to(target) or lone.empty:
            continue
        creating = lone[[(side, i) not in settled for i in lone.source_id]]
        linked = set(links[f"{target}_id"].dropna()) | {pair[at] for pair in linked_now}
        taken = other[other.source_id.isin(linked)]
        for key in ("email", "phone") if target == "ghl" else ("email",):
            mine = creating[["source_id", key]].dropna()
            hits = mine.merge(taken[["source_id", key]].dropna(), on=key, suffixes=("", "_there"))
            for own, there in zip(hits.source_id, hits.source_id_there, strict=True):
                found.setdefault((side, own), []).append(f"{target}:{there} by {key}, already linked to another record")
            twins = mine[mine[key].duplicated(keep=False)]
            for _, group in twins.groupby(key):
                for own in group.source_id:
                    found.setdefault((side, own), []).extend(
                        f"{side}:{twin} by {key}: one create in {plan.ctx.side_name(target)} would land on the other"
                        for twin in group.source_id if twin != own)
    return found


def _first_honoured(decided: pd.DataFrame, chosen: list[tuple[str, str]], link_ids: dict[tuple, int],
                    lone_ghl: pd.DataFrame, lone_app: pd.DataFrame) -> dict[int, int | None]:
    """Decisions this run honoured for the first time: a link it made (decision -> xref id), a
    keep-apart whose records it saw unlinked."""
    fresh = decided[decided.applied_run_id.isna()]
    made = {(g, a) for g, a in chosen}
    out: dict[int, int | None] = {}
    for d in fresh.itertuples():
        if d.decision == "link" and (d.ghl_id, d.app_id) in made:
            out[int(d.id)] = link_ids[(d.ghl_id, d.app_id)]
        elif d.decision == "apart" and (d.ghl_id in lone_ghl.index or d.app_id in lone_app.index):
            out[int(d.id)] = None
    return out


def _undecided(frame: pd.DataFrame, side: Side, decided: set[tuple[str, str]]) -> pd.DataFrame:
    return frame[~frame.source_id.isin({source_id for s, source_id in decided if s == side})]


def _children(conn: sa.Connection, ctx: RunContext, plan: Planner) -> dict[str, int]:
    entity = plan.entity
    staged = pd.read_sql(sa.select(staging_record).where(
        staging_record.c.profile == ctx.profile.name, staging_record.c.entity == entity), conn)
    if staged.empty:
        return {"waiting_for_contact": 0}
    contacts = _links(conn, ctx, "contact")
    contact_link = {**{("ghl", g): i for g, i in zip(contacts.ghl_id, contacts.id, strict=True) if g},
                    **{("app", a): i for a, i in zip(contacts.app_id, contacts.id, strict=True) if a}}
    staged["contact_link"] = [contact_link.get((s, c)) for s, c in zip(staged.side, staged.contact_id, strict=True)]
    links, busy = _links(conn, ctx, entity), _busy(conn, ctx)
    ghl = staged[staged.side == "ghl"].set_index("source_id", drop=False)
    app = staged[staged.side == "app"].set_index("source_id", drop=False)
    ghl = _deleted_in_ghl(conn, ctx, plan, links, ghl, app)
    for link in _changed_links(links, ghl, app, busy).itertuples():
        if link.ghl_id in ghl.index and link.app_id in app.index:
            base = link.base if isinstance(link.base, dict) else None
            g = ghl.loc[link.ghl_id]
            plan.pair(int(link.id), g, app.loc[link.app_id], base, _int(g.contact_link))

    lone_ghl = ghl[~ghl.source_id.isin(links.ghl_id.dropna()) & ghl.contact_link.notna()]
    lone_app = app[~app.source_id.isin(links.app_id.dropna()) & app.contact_link.notna() & ~app.deleted.astype(bool)]
    pairs = _natural_pairs(lone_ghl, lone_app, NATURAL_KEY[entity])
    paired = {g for g, _ in pairs} | {a for _, a in pairs}
    new_links = [{"ghl_id": g, "app_id": a} for g, a in pairs]
    new_links += [{f"{side}_id": s} for side, lone in (("ghl", lone_ghl), ("app", lone_app))
                  for s in lone.source_id if s not in paired and plan.mapping.writes_to(OTHER[side])]
    _insert_links(conn, ctx, entity, new_links)
    link_ids = _link_ids(conn, ctx, entity)
    for g, a in pairs:
        plan.pair(link_ids[(g, a)], ghl.loc[g], app.loc[a], None, _int(ghl.loc[g].contact_link))
    for link_id, side, row in _one_sided(link_ids, busy, ghl, app):
        plan.create(link_id, side, row, _int(row.contact_link))
    waiting = int(staged.contact_link.isna().sum())
    return {"waiting_for_contact": waiting}


def _deleted_in_ghl(conn: sa.Connection, ctx: RunContext, plan: Planner, links: pd.DataFrame, ghl: pd.DataFrame,
                    app: pd.DataFrame) -> pd.DataFrame:
    """Linked children missing from a complete list this run read of their GHL contact's children were
    deleted in GHL: each follows ``on_delete`` and leaves GHL's staging, so its link goes quiet (never
    recreated, never updated). Only complete lists count: a failed read fails extract before this."""
    logged = conn.execute(sa.select(run_log.c.stats).where(
        run_log.c.profile == ctx.profile.name, run_log.c.run_id == ctx.run_id, run_log.c.step == "extract",
        run_log.c.side == "ghl")).scalar_one_or_none() or {}
    complete = set((logged.get("complete_lists") or {}).get(plan.entity, []))
    if not complete or ghl.empty:
        return ghl
    seen = {r.source_id for r in conn.execute(sa.select(raw_record.c.source_id).where(
        raw_record.c.profile == ctx.profile.name, raw_record.c.run_id == ctx.run_id, raw_record.c.side == "ghl",
        raw_record.c.entity == plan.entity))} | set((logged.get("unchanged_listed") or {}).get(plan.entity, []))
    both = links.dropna(subset=["ghl_id", "app_id"])
    gone = both[both.ghl_id.isin(ghl.index[ghl.contact_id.isin(complete)]) & ~both.ghl_id.isin(seen)
                & both.app_id.isin(app.index)]
    return _follow_ghl_deletes(conn, ctx, plan, gone, ghl, app)


def _contacts_deleted_in_ghl(conn: sa.Connection, ctx: RunContext, plan: Planner, links: pd.DataFrame,
                             ghl: pd.DataFrame, app: pd.DataFrame) -> pd.DataFrame:
    """Linked contacts GHL deleted (a ContactDelete webhook, confirmed by GHL in this run's extract):
    each follows ``on_delete`` on the app and leaves GHL's staging, so its link goes quiet."""
    deleted = inbox.deleted_contacts(conn, ctx)
    if not deleted:
        return ghl
    both = links.dropna(subset=["ghl_id", "app_id"])
    gone = both[both.ghl_id.isin(deleted) & both.ghl_id.isin(ghl.index) & both.app_id.isin(app.index)]
    return _follow_ghl_deletes(conn, ctx, plan, gone, ghl, app)


def _follow_ghl_deletes(conn: sa.Connection, ctx: RunContext, plan: Planner, gone: pd.DataFrame,
                        ghl: pd.DataFrame, app: pd.DataFrame) -> pd.DataFrame:
    """Plan ``on_delete`` for each link in ``gone`` and drop its GHL record from staging."""
    for link in gone.itertuples():
        g = ghl.loc[link.ghl_id]
        plan.deleted(int(link.id), g, app.loc[link.app_id], _int(g.get("contact_link")), gone="ghl")
    if not gone.empty:
        table = staging_contact if plan.entity == "contact" else staging_record
        entity = [] if plan.entity == "contact" else [staging_record.c.entity == plan.entity]
        conn.execute(sa.delete(table).where(table.c.profile == ctx.profile.name, table.c.side == "ghl",
                                            table.c.source_id.in_(list(gone.ghl_id)), *entity))
    return ghl.drop(index=list(gone.ghl_id))


def _one_sided(link_ids: dict[tuple, int], busy: set[int], ghl: pd.DataFrame, app: pd.DataFrame):
    """(link id, side, staged row) of each link that has a record on one side only: a create to plan."""
    for (g, a), link_id in link_ids.items():
        if (g is None) != (a is None) and link_id not in busy:
            side, source_id = ("ghl", g) if a is None else ("app", a)
            frame = ghl if side == "ghl" else app
            if source_id in frame.index:
                yield link_id, side, frame.loc[source_id]


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _natural_pairs(ghl: pd.DataFrame, app: pd.DataFrame, key: str) -> list[tuple[str, str]]:
    """Unlinked children under the same contact with the same natural key, unique on both sides."""
    if ghl.empty or app.empty:
        return []
    left = pd.DataFrame({"g": ghl.source_id.values, "link": ghl.contact_link.values,
                         "key": [f.get(key) for f in ghl["fields"]]}).dropna()
    right = pd.DataFrame({"a": app.source_id.values, "link": app.contact_link.values,
                          "key": [f.get(key) for f in app["fields"]]}).dropna()
    joined = left.merge(right, on=["link", "key"])
    unique = joined[~joined.g.duplicated(keep=False) & ~joined.a.duplicated(keep=False)]
    return list(zip(unique.g, unique.a, strict=True))


def reconcile(ctx: RunContext) -> dict[str, Any]:
    from crm_sync.warehouse.db import engine

    eng = engine()
    planners = {entity: Planner(ctx, entity) for entity in ctx.profile.synced()}
    now = utcnow()
    with profile_lock(eng, ctx.profile.name, "reconcile"), eng.begin() as conn:
        stats = _contacts(conn, ctx, planners["contact"], planners.get("task"))
        for entity, plan in planners.items():
            if entity != "contact":
                stats[f"{entity}_waiting_for_contact"] = _children(conn, ctx, plan)["waiting_for_contact"]
        rows = [row for plan in planners.values() for row in plan.outbox]
        updates = [{"link": u["id"], "gh": u["ghl_hash"], "ah": u["app_hash"], "base": u["base"]}
                   for plan in planners.values() for u in plan.link_updates]
        if updates:  # one executemany, not a statement per link
            conn.execute(sa.update(xref).where(xref.c.id == sa.bindparam("link")).values(
                ghl_hash=sa.bindparam("gh"), app_hash=sa.bindparam("ah"), base=sa.bindparam("base"), updated_at=now),
                updates)
        _queue(conn, ctx, rows)
        extracted = pd.read_sql(sa.select(raw_record.c.side, raw_record.c.entity).where(
            raw_record.c.profile == ctx.profile.name, raw_record.c.run_id == ctx.run_id), conn)
        stats = {**_stats(rows, extracted), **stats}
        log_step(conn, ctx, "reconcile", stats)
    return stats


def _queue(conn: sa.Connection, ctx: RunContext, rows: list[dict[str, Any]]) -> None:
    """Add the writes; an older unsent write for the same record and side is superseded."""
    for row in rows:
        if row["xref_id"]:
            conn.execute(sa.update(outbox).where(
                outbox.c.xref_id == row["xref_id"], outbox.c.entity == row["entity"], outbox.c.side == row["side"],
                outbox.c.status.in_(["pending", "dry_run"]), outbox.c.idempotency_key != row["idempotency_key"],
            ).values(status="superseded"))
    insert_ignore(conn, outbox, rows, keys=["idempotency_key"])
    keys = [row["idempotency_key"] for row in rows]
    if keys and not ctx.dry_run:  # a write first planned in a dry run is now due
        conn.execute(sa.update(outbox).where(outbox.c.idempotency_key.in_(keys), outbox.c.status == "dry_run")
                     .values(status="pending"))


def _stats(rows: list[dict[str, Any]], extracted: pd.DataFrame) -> dict[str, Any]:
    planned: dict[str, int] = {f"{side}_{op}": 0 for side in ("ghl", "app") for op in ("create", "update")}
    by_entity: dict[str, int] = {}
    for row in rows:
        key = f"{row['side']}_{row['op']}"
        planned[key] = planned.get(key, 0) + 1
        by_entity[row["entity"]] = by_entity.get(row["entity"], 0) + 1
    return {"planned": planned, "planned_by_entity": by_entity,
            "extracted_ghl": int((extracted.side == "ghl").sum()), "extracted_app": int((extracted.side == "app").sum())}

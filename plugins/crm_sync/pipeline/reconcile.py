"""Reconcile: decide every write, and put it in the outbox. Nothing is sent from here.

Contacts first, then tasks, notes and appointments (they link through their contact):

1. Candidates: staged records with no identity link, or whose hash differs from the one
   the link last recorded for their side (our own echoes match it, so they drop out).
2. Identity for unlinked contacts: the other side's id a record keeps (the profile's
   ``external_id``), then normalised email, then E.164 phone (only when the emails do not
   contradict each other). A record that matches more than one, or is matched by more than
   one, or whose match names another first name, is quarantined as ``ambiguous_match``,
   never guessed.
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
from datetime import timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext, log_step, utcnow
from crm_sync.pipeline.matching import diff, external_matches, find_matches
from crm_sync.pipeline.merge import merge
from crm_sync.pipeline.normalize import Broken
from crm_sync.pipeline.stage import quarantine_row
from crm_sync.profile import CANONICAL, GHL_READ_ONLY, Side
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
        if op in ("create", "update"):  # only fields that side holds and accepts
            payload = {k: v for k, v in payload.items() if k in self.fields and getattr(self.fields[k], side)
                       and (side == "app" or (self.entity, k) not in GHL_READ_ONLY)}
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
        cancelled, a note's body marked. None: ``target`` has no soft form (an app's contact)."""
        if self.entity == "contact":
            return ("archive", {"tags": [self.mapping.archive_tag]}) if target == "ghl" else (None, {})
        api = self.ctx.profile.app.entities.get(self.entity) if self.ctx.profile.app.kind == "rest" else None
        if target == "app" and api is not None and api.deleted is not None and api.delete is not None:
            return "delete", {"deleted": True}
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

    def template_tasks(self, contact_xref_id: int, record: dict[str, Any], tasks_planner: Planner) -> None:
        """The profile's tasks for a person the app brings to GHL (a lead's first call, a reminder).
        Their link is made when load creates them (xref_id 0)."""
        for index, template in enumerate(self.mapping.new_contact_tasks):
            if template.only_if and not record.get(template.only_if):
                continue
            due = (utcnow() + timedelta(hours=template.due_in_hours)).replace(microsecond=0)
            payload = {"title": template.title, "body": template.body, "completed": False,
                       "due_date": due.strftime("%Y-%m-%dT%H:%M:%SZ")}
            payload = {k: v for k, v in payload.items() if v is not None and k in tasks_planner.fields}
            tasks_planner.outbox.append({
                "profile": self.ctx.profile.name, "run_id": self.ctx.run_id, "entity": "task", "side": "ghl",
                "op": "create", "xref_id": 0, "contact_xref_id": contact_xref_id, "target_id": None,
                "payload": payload, "merged": payload, "source_hash": None, "status": "pending", "attempts": 0,
                "decisions": [{"field": "*", "winner": "profile", "reason": "new_contact_tasks template",
                               "ghl": "", "app": "", "value": template.title}],
                "created_at": utcnow(),
                "idempotency_key": _idempotency_key(self.ctx, "task", "ghl", "template", (contact_xref_id, index),
                                                    (), {}),
            })


def _links(conn: sa.Connection, ctx: RunContext, entity: str) -> pd.DataFrame:
    return pd.read_sql(sa.select(xref).where(xref.c.profile == ctx.profile.name, xref.c.entity == entity), conn)


def _busy(conn: sa.Connection, ctx: RunContext) -> set[int]:
    return {r.xref_id for r in conn.execute(sa.select(outbox.c.xref_id).where(
        outbox.c.profile == ctx.profile.name, outbox.c.status == "pending"))}


def _insert_links(conn: sa.Connection, ctx: RunContext, entity: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(sa.insert(xref), [{"profile": ctx.profile.name, "entity": entity, "ghl_id": None,
                                        "app_id": None, "updated_at": utcnow(), **row} for row in rows])


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
    links, busy = _links(conn, ctx, "contact"), _busy(conn, ctx)
    ghl = staged[staged.side == "ghl"].set_index("source_id", drop=False)
    app = staged[staged.side == "app"].set_index("source_id", drop=False)
    changed = _changed_links(links, ghl, app, busy)
    for link in plan.settle_identical(changed, ghl, app).itertuples():
        base = link.base if isinstance(link.base, dict) else None  # never synced yet: no base
        plan.pair(int(link.id), ghl.loc[link.ghl_id], app.loc[link.app_id], base)

    lone_ghl = ghl[~ghl.source_id.isin(links.ghl_id.dropna())]
    lone_app = app[~app.source_id.isin(links.app_id.dropna()) & ~app.deleted.astype(bool)]
    pairs, ambiguous = external_matches(lone_ghl, lone_app, links)
    decided = {*ambiguous, *(("ghl", g) for g, _ in pairs), *(("app", a) for _, a in pairs)}
    by_email, ambiguous_by_email = find_matches(_undecided(lone_ghl, "ghl", decided), _undecided(lone_app, "app", decided))
    pairs += by_email
    ambiguous.update(ambiguous_by_email)
    new_links = [{"ghl_id": g, "app_id": a} for g, a in pairs]
    matched = {("ghl", g) for g, _ in pairs} | {("app", a) for _, a in pairs}
    for side, lone in (("ghl", lone_ghl), ("app", lone_app)):
        for source_id in lone.source_id:
            if (side, source_id) not in matched and (side, source_id) not in ambiguous \
                    and plan.mapping.writes_to(OTHER[side]):
                new_links.append({f"{side}_id": source_id})
    _insert_links(conn, ctx, "contact", new_links)
    link_ids = _link_ids(conn, ctx, "contact")
    matched_links = pd.DataFrame({"id": [link_ids[p] for p in pairs], "ghl_id": [g for g, _ in pairs],
                                  "app_id": [a for _, a in pairs]})
    for link in plan.settle_identical(matched_links, ghl, app).itertuples():
        plan.pair(int(link.id), ghl.loc[link.ghl_id], app.loc[link.app_id], None)
    for link_id, side, row in _one_sided(link_ids, busy, ghl, app):
        before = len(plan.outbox)
        plan.create(link_id, side, row)
        created_in_ghl = any(r["side"] == "ghl" and r["op"] == "create" for r in plan.outbox[before:])
        if created_in_ghl and tasks is not None:
            plan.template_tasks(link_id, _record(row, "contact"), tasks)

    # An ambiguous record is quarantined again only when it changed; it stays unlinked until fixed.
    quarantined = [quarantine_row(ctx, side, int(row.raw_id or 0), source_id, Broken(
        "ambiguous_match", f"{side}:{source_id} has no unambiguous match, so it stays unlinked until fixed; "
                           f"candidates: {', '.join(sorted(set(c)))}"))
        for (side, source_id), c in ambiguous.items()
        for row in [(ghl if side == "ghl" else app).loc[source_id]] if row.run_id == ctx.run_id]
    insert_ignore(conn, quarantine, quarantined, keys=["profile", "run_id", "raw_id", "rule"])
    return {"new_matches": len(pairs), "ambiguous": len(ambiguous)}


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
    for link in gone.itertuples():
        g = ghl.loc[link.ghl_id]
        plan.deleted(int(link.id), g, app.loc[link.app_id], _int(g.contact_link), gone="ghl")
    if not gone.empty:
        conn.execute(sa.delete(staging_record).where(
            staging_record.c.profile == ctx.profile.name, staging_record.c.entity == plan.entity,
            staging_record.c.side == "ghl", staging_record.c.source_id.in_(list(gone.ghl_id))))
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

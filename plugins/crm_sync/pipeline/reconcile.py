"""Reconcile: decide every write, and put it in the outbox. Nothing is sent from here.

1. Candidates: staged records with no identity link, or whose hash differs from the one
   the link last recorded for their side (our own echoes match it, so they drop out).
2. Identity for unlinked records: normalised email, then E.164 phone (only when the
   emails do not contradict each other). A record that matches more than one, or is
   matched by more than one, is quarantined as ``ambiguous_match``, never guessed.
3. Each linked or newly matched pair is merged field by field (crm_sync.pipeline.merge);
   each side gets a patch of just the fields it lacks. Unmatched records are created on
   the other side. Links with writes still pending wait for load to finish them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext, log_step, utcnow
from crm_sync.pipeline.merge import merge
from crm_sync.pipeline.normalize import Broken
from crm_sync.pipeline.stage import quarantine_row
from crm_sync.profile import CONTACT_FIELDS, Side
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.ops import insert_ignore
from crm_sync.warehouse.tables import outbox, quarantine, raw_record, staging_contact, xref

ENTITY = "contact"
OTHER: dict[Side, Side] = {"ghl": "app", "app": "ghl"}
RECORD_FIELDS = (*CONTACT_FIELDS, "updated_at")


def _record(row: pd.Series) -> dict[str, Any]:
    return {name: (None if pd.isna(row[name]) else row[name]) for name in RECORD_FIELDS}


def _idempotency_key(ctx: RunContext, side: Side, op: str, ids: tuple, hashes: tuple, payload: dict) -> str:
    material = json.dumps([ctx.profile.name, ENTITY, side, op, ids, hashes, payload], sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def find_matches(ghl: pd.DataFrame, app: pd.DataFrame) -> tuple[list[tuple[str, str]], dict[tuple[Side, str], list]]:
    """Pairs of unlinked records that are the same person, and the ambiguous ones with their candidates."""
    pairs: list[tuple[str, str]] = []
    ambiguous: dict[tuple[Side, str], list] = {}
    left, right = ghl[["source_id", "email", "phone"]], app[["source_id", "email", "phone"]]
    for key in ("email", "phone"):
        taken_g = {g for g, _ in pairs} | {i for s, i in ambiguous if s == "ghl"}
        taken_a = {a for _, a in pairs} | {i for s, i in ambiguous if s == "app"}
        joined = left[~left.source_id.isin(taken_g) & left[key].notna()].merge(
            right[~right.source_id.isin(taken_a) & right[key].notna()], on=key, suffixes=("_g", "_a"))
        if key == "phone":  # a shared phone never overrides two different emails
            joined = joined[joined.email_g.isna() | joined.email_a.isna() | (joined.email_g == joined.email_a)]
        per_g = joined.groupby("source_id_g").source_id_a.transform("count")
        per_a = joined.groupby("source_id_a").source_id_g.transform("count")
        unique = joined[(per_g == 1) & (per_a == 1)]
        pairs.extend(zip(unique.source_id_g, unique.source_id_a, strict=True))
        for row in joined[(per_g > 1) | (per_a > 1)].itertuples():
            ambiguous.setdefault(("ghl", row.source_id_g), []).append(f"app:{row.source_id_a} by {key}")
            ambiguous.setdefault(("app", row.source_id_a), []).append(f"ghl:{row.source_id_g} by {key}")
    return pairs, ambiguous


class Planner:
    """Collects the outbox rows and link changes of one reconcile."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.mapping = ctx.profile.entities[ENTITY]
        self.fields = ctx.profile.contact_fields()
        self.outbox: list[dict[str, Any]] = []
        self.link_updates: list[dict[str, Any]] = []

    def write(self, side: Side, op: str, xref_id: int, target_id: str | None, payload: dict, merged: dict,
              source_hash: str, ids: tuple, hashes: tuple, decisions: list) -> None:
        if not payload or not self.mapping.writes_to(side):
            return
        self.outbox.append({
            "profile": self.ctx.profile.name, "run_id": self.ctx.run_id, "entity": ENTITY, "side": side, "op": op,
            "xref_id": xref_id, "target_id": target_id, "payload": payload, "merged": merged,
            "source_hash": source_hash, "decisions": decisions, "status": "pending", "attempts": 0,
            "idempotency_key": _idempotency_key(self.ctx, side, op, ids, hashes, payload), "created_at": utcnow(),
        })

    def pair(self, xref_id: int, g: pd.Series, a: pd.Series, base: dict | None) -> None:
        ghl_rec, app_rec = _record(g), _record(a)
        merged = merge(ghl_rec, app_rec, base, self.fields, self.mapping.conflict)
        ghl_patch, app_patch = merged.patch_for(ghl_rec), merged.patch_for(app_rec)
        ids, hashes = (g.source_id, a.source_id), (g.content_hash, a.content_hash)
        if not ghl_patch and not app_patch:
            self.link_updates.append({"id": xref_id, "ghl_hash": g.content_hash, "app_hash": a.content_hash,
                                      "base": merged.values})
            return
        self.write("ghl", "update", xref_id, g.source_id, ghl_patch, merged.values, a.content_hash, ids, hashes,
                   merged.decisions)
        self.write("app", "update", xref_id, a.source_id, app_patch, merged.values, g.content_hash, ids, hashes,
                   merged.decisions)

    def create(self, xref_id: int, source: Side, row: pd.Series) -> None:
        record = _record(row)
        merged = merge(record, record, None, self.fields, self.mapping.conflict)
        payload = {k: v for k, v in merged.values.items() if v is not None}
        ids, hashes = (source, row.source_id), (row.content_hash,)
        self.write(OTHER[source], "create", xref_id, None, payload, merged.values, row.content_hash, ids, hashes,
                   merged.decisions)
        # Fallback values reach the source side too, so both end up holding the same record.
        self.write(source, "update", xref_id, row.source_id, merged.patch_for(record), merged.values,
                   row.content_hash, ids, hashes, merged.decisions)


def _load(conn: sa.Connection, ctx: RunContext):
    profile = ctx.profile.name
    staged = pd.read_sql(sa.select(staging_contact).where(staging_contact.c.profile == profile), conn)
    links = pd.read_sql(sa.select(xref).where(xref.c.profile == profile, xref.c.entity == ENTITY), conn)
    busy = {r.xref_id for r in conn.execute(sa.select(outbox.c.xref_id).where(
        outbox.c.profile == profile, outbox.c.status == "pending"))}
    extracted = pd.read_sql(sa.select(raw_record.c.side, raw_record.c.source_id).where(
        raw_record.c.profile == profile, raw_record.c.run_id == ctx.run_id), conn)
    return staged, links, busy, extracted


def reconcile(ctx: RunContext) -> dict[str, Any]:
    eng = engine()
    plan = Planner(ctx)
    with eng.begin() as conn:
        staged, links, busy, extracted = _load(conn, ctx)
        ghl = staged[staged.side == "ghl"].set_index("source_id", drop=False)
        app = staged[staged.side == "app"].set_index("source_id", drop=False)
        by_ghl = links.dropna(subset=["ghl_id"]).set_index("ghl_id")
        by_app = links.dropna(subset=["app_id"]).set_index("app_id")

        # 1. Linked pairs where either side moved past the hash we last recorded.
        changed_ghl = ghl.join(by_ghl[["id", "ghl_hash"]], how="inner")
        changed_ghl = changed_ghl[changed_ghl.content_hash != changed_ghl.ghl_hash]
        changed_app = app.join(by_app[["id", "app_hash"]], how="inner")
        changed_app = changed_app[changed_app.content_hash != changed_app.app_hash]
        touched = (set(changed_ghl["id"]) | set(changed_app["id"])) - busy
        for link in links[links.id.isin(touched)].itertuples():
            if link.ghl_id in ghl.index and link.app_id in app.index:
                base = link.base if isinstance(link.base, dict) else None  # never synced yet: no base
                plan.pair(int(link.id), ghl.loc[link.ghl_id], app.loc[link.app_id], base)

        # 2. Unlinked records: match, quarantine the ambiguous, create the rest on the other side.
        lone_ghl = ghl[~ghl.source_id.isin(by_ghl.index)]
        lone_app = app[~app.source_id.isin(by_app.index)]
        pairs, ambiguous = find_matches(lone_ghl, lone_app)
        now = utcnow()
        new_links = [{"profile": ctx.profile.name, "entity": ENTITY, "ghl_id": g, "app_id": a, "updated_at": now}
                     for g, a in pairs]
        matched = {("ghl", g) for g, _ in pairs} | {("app", a) for _, a in pairs}
        for side, lone in (("ghl", lone_ghl), ("app", lone_app)):
            for source_id in lone.source_id:
                if (side, source_id) not in matched and (side, source_id) not in ambiguous \
                        and plan.mapping.writes_to(OTHER[side]):
                    new_links.append({"profile": ctx.profile.name, "entity": ENTITY, "ghl_id": None,
                                      "app_id": None, f"{side}_id": source_id, "updated_at": now})
        if new_links:
            conn.execute(sa.insert(xref), new_links)
        link_ids = {(r.ghl_id, r.app_id): r.id for r in conn.execute(
            sa.select(xref.c.id, xref.c.ghl_id, xref.c.app_id).where(xref.c.profile == ctx.profile.name))}
        for g, a in pairs:
            plan.pair(link_ids[(g, a)], ghl.loc[g], app.loc[a], None)
        for (g, a), link_id in link_ids.items():
            if (g is None) != (a is None) and link_id not in busy:
                side, source_id = ("ghl", g) if a is None else ("app", a)
                frame = ghl if side == "ghl" else app
                if source_id in frame.index:
                    plan.create(link_id, side, frame.loc[source_id])

        # An ambiguous record is quarantined again only when it changed; it stays unlinked until fixed.
        quarantined = [quarantine_row(ctx, side, int(row.raw_id or 0), source_id, Broken(
            "ambiguous_match", f"{side}:{source_id} matches more than one record: {', '.join(sorted(set(c)))}"))
            for (side, source_id), c in ambiguous.items()
            for row in [(ghl if side == "ghl" else app).loc[source_id]] if row.run_id == ctx.run_id]
        insert_ignore(conn, quarantine, quarantined, keys=["profile", "run_id", "raw_id", "rule"])
        for update in plan.link_updates:
            conn.execute(sa.update(xref).where(xref.c.id == update["id"]).values(
                ghl_hash=update["ghl_hash"], app_hash=update["app_hash"], base=update["base"], updated_at=now))
        _queue(conn, ctx, plan.outbox)
        stats = _stats(plan.outbox, extracted, len(pairs), len(ambiguous))
        log_step(conn, ctx, "reconcile", stats)
    return stats


def _queue(conn: sa.Connection, ctx: RunContext, rows: list[dict[str, Any]]) -> None:
    """Add the writes; an older unsent write for the same record and side is superseded."""
    for row in rows:
        conn.execute(sa.update(outbox).where(
            outbox.c.xref_id == row["xref_id"], outbox.c.side == row["side"],
            outbox.c.status.in_(["pending", "dry_run"]), outbox.c.idempotency_key != row["idempotency_key"],
        ).values(status="superseded"))
    insert_ignore(conn, outbox, rows, keys=["idempotency_key"])
    keys = [row["idempotency_key"] for row in rows]
    if keys and not ctx.dry_run:  # a write first planned in a dry run is now due
        conn.execute(sa.update(outbox).where(outbox.c.idempotency_key.in_(keys), outbox.c.status == "dry_run")
                     .values(status="pending"))


def _stats(rows: list[dict[str, Any]], extracted: pd.DataFrame, matched: int, ambiguous: int) -> dict[str, Any]:
    planned = {f"{side}_{op}": 0 for side in ("ghl", "app") for op in ("create", "update")}
    for row in rows:
        planned[f"{row['side']}_{row['op']}"] += 1
    return {"planned": planned, "new_matches": matched, "ambiguous": ambiguous,
            "extracted_ghl": int((extracted.side == "ghl").sum()), "extracted_app": int((extracted.side == "app").sum())}

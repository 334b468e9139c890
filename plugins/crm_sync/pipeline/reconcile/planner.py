"""The outbox planner: turns one entity's pairs, creates and deletes into outbox rows (each with an
idempotency key that is the same in every run for the same write) and link updates. It decides
what to write; the step queues it (crm_sync.warehouse.outbox) and load sends it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.pipeline.matching import diff
from crm_sync.pipeline.merge import merge
from crm_sync.profile import CANONICAL, GHL_READ_ONLY, Side

OTHER: dict[Side, Side] = {"ghl": "app", "app": "ghl"}


def _value(value: Any) -> Any:
    if isinstance(value, list | dict):
        return value
    return None if pd.isna(value) else value


def staged_record(row: pd.Series, entity: str) -> dict[str, Any]:
    """A staged row as the canonical record merge takes (its mapped fields and ``updated_at``)."""
    if entity == "contact":
        values = {name: _value(row[name]) for name in CANONICAL["contact"]}
    else:
        values = dict(row["fields"])
    return {**values, "updated_at": _value(row["updated_at"])}


def record_values(row: Any, entity: str) -> dict[str, Any]:
    """A staged row's canonical values alone (``staged_record`` without its updated-at): what a
    profile rule reads."""
    values = staged_record(row, entity)
    values.pop("updated_at", None)
    return values


def idempotency_key(ctx: RunContext, entity: str, side: Side, op: str, ids: tuple, hashes: tuple,
                     payload: dict) -> str:
    material = json.dumps([ctx.profile.name, entity, side, op, ids, hashes, payload], sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def before(op: str, payload: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a write replaces on its target: the record's values now of the fields it sets (a delete:
    the record was not deleted). None for a create, which replaces nothing."""
    if op == "create" or current is None:
        return None
    return {name: False if name == "deleted" else _value(current.get(name)) for name in payload}


class Planner:
    """Collects the outbox rows and link changes of one entity's reconcile."""

    def __init__(self, ctx: RunContext, entity: str):
        self.ctx, self.entity = ctx, entity
        self.mapping = ctx.profile.entities[entity]
        self.fields = ctx.profile.fields(entity)
        self.outbox: list[dict[str, Any]] = []
        self.link_updates: list[dict[str, Any]] = []
        # What the profile's rules look at (crm_sync.pipeline.reconcile.rule_plan): the changed pairs
        # (link, GHL row, app row, last synced values, contact link) and the records whose create on the
        # other side is planned (link, side, row, contact link).
        self.pairs: list[tuple[int, pd.Series, pd.Series, dict | None, int | None]] = []
        self.created: list[tuple[int, Side, pd.Series, int | None]] = []
        # A pair whose sides ended alike is settled in bulk, unseen by rules: those watching changes
        # need it merged when it moved from its base (the last tag removed in GHL, the app holding none).
        self.rules_watch = any(rule.entity == entity and rule.when.event != "new_contact"
                               for rule in ctx.profile.active_rules)

    def write(self, side: Side, op: str, xref_id: int, target_id: str | None, payload: dict, merged: dict,
              source_hash: str | None, ids: tuple, hashes: tuple, decisions: list,
              contact_xref_id: int | None = None, current: dict[str, Any] | None = None) -> None:
        """Plan one write; ``current``: the target record's values now (its ``before``; none for a create)."""
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
            "before": before(op, payload, current), "status": "pending", "attempts": 0, "created_at": utcnow(),
            "rule": None, "idempotency_key": idempotency_key(self.ctx, self.entity, side, op, ids, hashes, payload),
        })

    def accepted(self, side: Side, values: dict[str, Any]) -> dict[str, Any]:
        """Only the fields that side holds and accepts."""
        return {k: v for k, v in values.items() if k in self.fields and getattr(self.fields[k], side)
                and (side == "app" or (self.entity, k) not in GHL_READ_ONLY)}

    def pair(self, xref_id: int, g: pd.Series, a: pd.Series, base: dict | None,
             contact_xref_id: int | None = None, keep_conflicts: bool = False) -> None:
        """Merge a linked pair and plan each side's patch; ``keep_conflicts``: a pair just linked by
        review, whose clock-settled conflicts keep both values (crm_sync.pipeline.merge)."""
        ghl_rec, app_rec = staged_record(g, self.entity), staged_record(a, self.entity)
        self.same_full_name(ghl_rec, app_rec)
        ids, hashes = (g.source_id, a.source_id), (g.content_hash, a.content_hash)
        if a.deleted:
            self.deleted(xref_id, g, a, contact_xref_id)
            return
        self.pairs.append((xref_id, g, a, base, contact_xref_id))
        merged = merge(ghl_rec, app_rec, base, self.fields, self.mapping.conflict, self.entity, keep_conflicts)
        # Only what each side holds, accepts and is written: a field one side lacks (tags GHL keeps alone)
        # is no write, so such a pair is settled (its hashes recorded), not merged again every run.
        ghl_patch, app_patch = (self.accepted(side, merged.patch_for(rec)) if self.mapping.writes_to(side) else {}
                                for side, rec in (("ghl", ghl_rec), ("app", app_rec)))
        if not ghl_patch and not app_patch:
            self.link_updates.append({"id": xref_id, "ghl_hash": g.content_hash, "app_hash": a.content_hash,
                                      "base": merged.values})
            return
        self.write("ghl", "update", xref_id, g.source_id, ghl_patch, merged.values, a.content_hash, ids, hashes,
                   merged.decisions, contact_xref_id, ghl_rec)
        self.write("app", "update", xref_id, a.source_id, app_patch, merged.values, g.content_hash, ids, hashes,
                   merged.decisions, contact_xref_id, app_rec)

    def settle_identical(self, links: pd.DataFrame, ghl: pd.DataFrame, app: pd.DataFrame) -> pd.DataFrame:
        """Links whose two records hold the same value in every mapped field need no write: their
        hashes and base are recorded here in bulk, column by column (matching.diff), so the per-pair
        merge runs only for pairs that differ. Returns those links, whose records are both staged.
        When a profile rule watches this entity's changes (``rules_watch``), a pair that left its last
        synced state alike on both sides (GHL's last tag removed, where the app holds no tags) is a
        change a rule must see, so it is returned too, to be paired (``pairs``) and settled there."""
        links = links[links.ghl_id.isin(ghl.index) & links.app_id.isin(app.index)]
        if links.empty:
            return links
        names = list(self.fields)
        compared = diff(ghl, app, links, tuple(names)).links
        differs = compared.differs.to_numpy() | app.deleted.astype(bool).loc[compared.app_id].to_numpy()
        for name, spec in self.fields.items():  # both empty with a fallback: the fallback is written
            if spec.fallback is not None:
                differs |= (ghl[name].loc[compared.ghl_id].isna().to_numpy()
                            & app[name].loc[compared.app_id].isna().to_numpy())
        if self.rules_watch and "base" in links:  # alike, yet changed since the last sync: the rules' event
            held = ghl.loc[compared.ghl_id, names].astype(object)
            now = held.where(held.notna(), None).to_dict("records")
            differs |= [isinstance(base, dict) and any(values[n] != base.get(n) for n in names)
                        for base, values in zip(links.base, now, strict=True)]
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
        held = {name: value for name, value in staged_record(kept, self.entity).items() if name in self.fields}
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
                   source, ids, hashes, decision, contact_xref_id, staged_record(kept, self.entity))

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
        record = staged_record(row, self.entity)
        merged = merge(record, record, None, self.fields, self.mapping.conflict, self.entity)
        payload = {k: v for k, v in merged.values.items() if v is not None}
        ids, hashes = (source, row.source_id), (row.content_hash,)
        planned = len(self.outbox)
        self.write(OTHER[source], "create", xref_id, None, payload, merged.values, row.content_hash, ids, hashes,
                   merged.decisions, contact_xref_id)
        if len(self.outbox) > planned:
            self.created.append((xref_id, source, row, contact_xref_id))
        # Fallback values reach the source side too, so both end up holding the same record.
        self.write(source, "update", xref_id, row.source_id, merged.patch_for(record), merged.values,
                   row.content_hash, ids, hashes, merged.decisions, contact_xref_id, record)

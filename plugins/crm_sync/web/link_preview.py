"""What "link these two" would make each side hold, field by field, before anyone links them.

Computed by reconcile's own planner (crm_sync.pipeline.reconcile.planner.Planner.pair: the merge
rules, a field's own conflict rule and fallback, GHL's read-only fields, one full-name field, the
profile's direction) on the two records as staged, with no base, as the run after a link merges
them: the preview cannot disagree with what the run then writes. Nothing is stored.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.merge import merge
from crm_sync.pipeline.reconcile.planner import Planner, staged_record
from crm_sync.profile import Profile
from crm_sync.warehouse.tables import staging_contact


def link_previews(conn: sa.Connection, profile: Profile, pairs: list[tuple[str, str]]
                  ) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(ghl id, app id) -> one row per mapped contact field: ``field``, each side's value now and
    after the link (``ghl``, ``ghl_after``, ``app``, ``app_after``; ``held`` says which sides hold
    the field), and ``why`` (merge's reason). Pairs with a record no longer staged are left out."""
    ids = {side: sorted({pair[i] for pair in pairs}) for i, side in enumerate(("ghl", "app"))}
    staged = pd.read_sql(sa.select(staging_contact).where(
        staging_contact.c.profile == profile.name,
        sa.or_(*(sa.and_(staging_contact.c.side == side, staging_contact.c.source_id.in_(ids[side]))
                 for side in ("ghl", "app")))), conn) if pairs else pd.DataFrame()
    if staged.empty:
        return {}
    frames = {side: staged[staged.side == side].set_index("source_id", drop=False) for side in ("ghl", "app")}
    ctx = RunContext(profile, "review-preview", "preview", dry_run=True)
    return {(g, a): _preview(ctx, frames["ghl"].loc[g], frames["app"].loc[a])
            for g, a in pairs if g in frames["ghl"].index and a in frames["app"].index}


def _preview(ctx: RunContext, g: pd.Series, a: pd.Series) -> list[dict[str, Any]]:
    plan = Planner(ctx, "contact")
    plan.pair(0, g, a, None, keep_conflicts=True)  # as identity.reconcile_contacts merges a review link
    now = {"ghl": staged_record(g, "contact"), "app": staged_record(a, "contact")}
    after = {side: {**now[side], **row["payload"]} for row in plan.outbox if row["op"] == "update"
             for side in [row["side"]]}
    shown = {side: dict(record) for side, record in now.items()}
    plan.same_full_name(shown["ghl"], shown["app"])  # as pair() does, before it merges
    merged = merge(shown["ghl"], shown["app"], None, plan.fields, plan.mapping.conflict, "contact", True)
    reasons = {d["field"]: d["reason"] for d in merged.decisions}
    rows = []
    for name, spec in plan.fields.items():
        values = {side: now[side].get(name) for side in ("ghl", "app")}
        rows.append({"field": name, "held": {side: bool(getattr(spec, side)) for side in ("ghl", "app")},
                     "ghl": values["ghl"], "app": values["app"],
                     "ghl_after": after.get("ghl", now["ghl"]).get(name),
                     "app_after": after.get("app", now["app"]).get(name),
                     "why": reasons.get(name, "the same on both sides" if values["ghl"] == values["app"] else "")})
    return rows

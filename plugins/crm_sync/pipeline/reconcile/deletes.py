"""GHL delete detection: linked records GHL deleted (a contact's ContactDelete webhook confirmed by
this run's extract, a child missing from a complete list of its contact's children) follow the
profile's ``on_delete`` on the app, and leave GHL's staging so their link goes quiet. (The app's
deletes arrive as a soft-delete marker on the staged row: Planner.pair handles those.)"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from crm_sync.pipeline import handoff
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.reconcile.links import optional_int
from crm_sync.pipeline.reconcile.planner import Planner
from crm_sync.warehouse import staging
from crm_sync.warehouse.tables import raw_record


def deleted_in_ghl(conn: sa.Connection, ctx: RunContext, plan: Planner, links: pd.DataFrame, ghl: pd.DataFrame,
                    app: pd.DataFrame) -> pd.DataFrame:
    """Linked children missing from a complete list this run read of their GHL contact's children were
    deleted in GHL: each follows ``on_delete`` and leaves GHL's staging, so its link goes quiet (never
    recreated, never updated). Only complete lists count: a failed read fails extract before this."""
    handed = handoff.read(conn, ctx, "ghl")
    complete = set(handed.complete_lists.get(plan.entity, []))
    if not complete or ghl.empty:
        return ghl
    seen = {r.source_id for r in conn.execute(sa.select(raw_record.c.source_id).where(
        raw_record.c.profile == ctx.profile.name, raw_record.c.run_id == ctx.run_id, raw_record.c.side == "ghl",
        raw_record.c.entity == plan.entity))} | set(handed.unchanged_listed.get(plan.entity, []))
    both = links.dropna(subset=["ghl_id", "app_id"])
    gone = both[both.ghl_id.isin(ghl.index[ghl.contact_id.isin(complete)]) & ~both.ghl_id.isin(seen)
                & both.app_id.isin(app.index)]
    return _follow_ghl_deletes(conn, ctx, plan, gone, ghl, app)


def contacts_deleted_in_ghl(conn: sa.Connection, ctx: RunContext, plan: Planner, links: pd.DataFrame,
                             ghl: pd.DataFrame, app: pd.DataFrame) -> pd.DataFrame:
    """Linked contacts GHL deleted (a ContactDelete webhook, confirmed by GHL in this run's extract):
    each follows ``on_delete`` on the app and leaves GHL's staging, so its link goes quiet."""
    deleted = handoff.read(conn, ctx, "ghl").webhook_events.deleted_contacts
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
        plan.deleted(int(link.id), g, app.loc[link.app_id], optional_int(g.get("contact_link")), gone="ghl")
    if not gone.empty:
        staging.withdraw(conn, ctx.profile.name, plan.entity, "ghl", gone.ghl_id)
    return ghl.drop(index=list(gone.ghl_id))

"""Children (tasks, notes, appointments): each links through its contact. Changed linked pairs are
merged, unlinked children under the same linked contact pair up by their natural key (a task's
title, a note's body, an appointment's start) when it is unique on both sides, the rest are
created on the other side; a child whose contact is not linked yet waits for a later run."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.reconcile.deletes import deleted_in_ghl
from crm_sync.pipeline.reconcile.links import (
    busy_links,
    changed_links,
    insert_links,
    one_sided,
    optional_int,
    read_link_ids,
    read_links,
)
from crm_sync.pipeline.reconcile.planner import OTHER, Planner
from crm_sync.warehouse.tables import staging_record

NATURAL_KEY = {"task": "title", "note": "body", "appointment": "start"}


def reconcile_children(conn: sa.Connection, ctx: RunContext, plan: Planner) -> dict[str, int]:
    """Plan the writes of one child entity (``plan.entity``); returns how many staged children wait
    for their contact to be linked."""
    entity = plan.entity
    staged = pd.read_sql(sa.select(staging_record).where(
        staging_record.c.profile == ctx.profile.name, staging_record.c.entity == entity), conn)
    if staged.empty:
        return {"waiting_for_contact": 0}
    contacts = read_links(conn, ctx, "contact")
    contact_link = {**{("ghl", g): i for g, i in zip(contacts.ghl_id, contacts.id, strict=True) if g},
                    **{("app", a): i for a, i in zip(contacts.app_id, contacts.id, strict=True) if a}}
    staged["contact_link"] = [contact_link.get((s, c)) for s, c in zip(staged.side, staged.contact_id, strict=True)]
    links, busy = read_links(conn, ctx, entity), busy_links(conn, ctx)
    ghl = staged[staged.side == "ghl"].set_index("source_id", drop=False)
    app = staged[staged.side == "app"].set_index("source_id", drop=False)
    ghl = deleted_in_ghl(conn, ctx, plan, links, ghl, app)
    for link in changed_links(links, ghl, app, busy).itertuples():
        if link.ghl_id in ghl.index and link.app_id in app.index:
            base = link.base if isinstance(link.base, dict) else None
            g = ghl.loc[link.ghl_id]
            plan.pair(int(link.id), g, app.loc[link.app_id], base, optional_int(g.contact_link))

    lone_ghl = ghl[~ghl.source_id.isin(links.ghl_id.dropna()) & ghl.contact_link.notna()]
    lone_app = app[~app.source_id.isin(links.app_id.dropna()) & app.contact_link.notna() & ~app.deleted.astype(bool)]
    pairs = _natural_pairs(lone_ghl, lone_app, NATURAL_KEY[entity])
    paired = {g for g, _ in pairs} | {a for _, a in pairs}
    new_links = [{"ghl_id": g, "app_id": a} for g, a in pairs]
    new_links += [{f"{side}_id": s} for side, lone in (("ghl", lone_ghl), ("app", lone_app))
                  for s in lone.source_id if s not in paired and plan.mapping.writes_to(OTHER[side])]
    insert_links(conn, ctx, entity, new_links)
    link_ids = read_link_ids(conn, ctx, entity)
    for g, a in pairs:
        plan.pair(link_ids[(g, a)], ghl.loc[g], app.loc[a], None, optional_int(ghl.loc[g].contact_link))
    for link_id, side, row in one_sided(link_ids, busy, ghl, app):
        plan.create(link_id, side, row, optional_int(row.contact_link))
    waiting = int(staged.contact_link.isna().sum())
    return {"waiting_for_contact": waiting}

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

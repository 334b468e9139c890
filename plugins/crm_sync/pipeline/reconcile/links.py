"""Link bookkeeping: the identity links (xref) between a GHL record and an app record, which
ones changed since the hashes they last recorded, which wait for a pending write, and which hold
a record on one side only (a create to plan)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.warehouse.tables import outbox, xref


def read_links(conn: sa.Connection, ctx: RunContext, entity: str) -> pd.DataFrame:
    """The profile's links of one entity, as a frame (id, ghl_id, app_id, hashes, base)."""
    return pd.read_sql(sa.select(xref).where(xref.c.profile == ctx.profile.name, xref.c.entity == entity), conn)


def busy_links(conn: sa.Connection, ctx: RunContext) -> set[int]:
    """Links with a write still pending: they wait for load to finish it."""
    return {r.xref_id for r in conn.execute(sa.select(outbox.c.xref_id).where(
        outbox.c.profile == ctx.profile.name, outbox.c.status == "pending"))}


def insert_links(conn: sa.Connection, ctx: RunContext, entity: str, rows: list[dict[str, Any]]) -> None:
    """New links, each with the ids it knows (``ghl_id``, ``app_id``, or both)."""
    if rows:
        conn.execute(sa.insert(xref), [{"profile": ctx.profile.name, "entity": entity, "ghl_id": None,
                                        "app_id": None, "updated_at": utcnow(), **row} for row in rows])


def reserve_links(conn: sa.Connection, ctx: RunContext, entity: str, count: int) -> list[int]:
    """Ids of ``count`` new links with neither side's id yet (a write planned here will give them one)."""
    if not count:
        return []
    rows = [{"profile": ctx.profile.name, "entity": entity, "updated_at": utcnow()} for _ in range(count)]
    return list(conn.execute(sa.insert(xref).returning(xref.c.id, sort_by_parameter_order=True), rows).scalars())


def read_link_ids(conn: sa.Connection, ctx: RunContext, entity: str) -> dict[tuple, int]:
    """(ghl_id, app_id) -> link id of every link of the entity."""
    return {(r.ghl_id, r.app_id): r.id for r in conn.execute(sa.select(xref.c.id, xref.c.ghl_id, xref.c.app_id)
                                                             .where(xref.c.profile == ctx.profile.name,
                                                                    xref.c.entity == entity))}


def changed_links(links: pd.DataFrame, ghl: pd.DataFrame, app: pd.DataFrame, busy: set[int]) -> pd.DataFrame:
    """Links where either side moved past the hash we last recorded."""
    by_ghl = links.dropna(subset=["ghl_id"]).set_index("ghl_id")
    by_app = links.dropna(subset=["app_id"]).set_index("app_id")
    changed_ghl = ghl.join(by_ghl[["id", "ghl_hash"]], how="inner")
    changed_app = app.join(by_app[["id", "app_hash"]], how="inner")
    touched = set(changed_ghl["id"][changed_ghl.content_hash != changed_ghl.ghl_hash]) | \
        set(changed_app["id"][changed_app.content_hash != changed_app.app_hash])
    return links[links.id.isin(touched - busy)]


def one_sided(link_ids: dict[tuple, int], busy: set[int], ghl: pd.DataFrame, app: pd.DataFrame):
    """(link id, side, staged row) of each link that has a record on one side only: a create to plan."""
    for (g, a), link_id in link_ids.items():
        if (g is None) != (a is None) and link_id not in busy:
            side, source_id = ("ghl", g) if a is None else ("app", a)
            frame = ghl if side == "ghl" else app
            if source_id in frame.index:
                yield link_id, side, frame.loc[source_id]


def optional_int(value: Any) -> int | None:
    """A link id read from a frame (NaN where there is none)."""
    return None if value is None or pd.isna(value) else int(value)


def save_link_updates(conn: sa.Connection, updates: list[dict[str, Any]], now: datetime) -> None:
    """Record the hashes and base of links settled without a write (``Planner.link_updates``):
    one executemany, not a statement per link."""
    if updates:
        conn.execute(sa.update(xref).where(xref.c.id == sa.bindparam("link")).values(
            ghl_hash=sa.bindparam("gh"), app_hash=sa.bindparam("ah"), base=sa.bindparam("base"), updated_at=now),
            [{"link": u["id"], "gh": u["ghl_hash"], "ah": u["app_hash"], "base": u["base"]} for u in updates])

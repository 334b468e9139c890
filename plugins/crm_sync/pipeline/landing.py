"""Hash-gated landing: extract lands a record only when its payload differs from the one last staged.

A run with nothing changed then adds no raw rows. The hash is recorded by stage, after the
row is staged (or quarantined), not by extract: a run that fails between the two lands the
record again next time, so no change is lost to a failed run.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext
from crm_sync.warehouse.ops import upsert
from crm_sync.warehouse.tables import raw_landed


VOLATILE = ("searchAfter",)  # GHL's search adds its paging cursor to every hit


def payload_hash(payload: Any) -> str:
    if isinstance(payload, dict):
        payload = {k: v for k, v in payload.items() if k not in VOLATILE}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def changed_only(conn: sa.Connection, ctx: RunContext, side: str, rows: list[dict[str, Any]]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows to land, rows whose payload equals the one last staged)."""
    last = {(r.entity, r.record_key): r.payload_hash for r in conn.execute(
        sa.select(raw_landed.c.entity, raw_landed.c.record_key, raw_landed.c.payload_hash).where(
            raw_landed.c.profile == ctx.profile.name, raw_landed.c.side == side))}
    land, unchanged = [], []
    for row in rows:
        same = last.get((row["entity"], row["record_key"])) == payload_hash(row["payload"])
        (unchanged if same else land).append(row)
    return land, unchanged


def mark_written(conn: sa.Connection, ctx: RunContext, side: str, entity: str, record_id: str,
                 held: dict[str, Any]) -> None:
    """After our write, what the side answered is what it holds: the next extract need not land the
    echo of our own write (when the side lists it in the same shape; else it lands once)."""
    upsert(conn, raw_landed, [{"profile": ctx.profile.name, "side": side, "entity": entity, "record_key": record_id,
                               "payload_hash": payload_hash(held), "run_id": ctx.run_id}],
           keys=["profile", "side", "entity", "record_key"])


def mark_staged(conn: sa.Connection, ctx: RunContext, raws: list[sa.Row]) -> None:
    """Remember each staged row's payload hash: the next extract skips it while it stays the same."""
    upsert(conn, raw_landed, [{"profile": ctx.profile.name, "side": r.side, "entity": r.entity,
                               "record_key": r.record_key, "payload_hash": payload_hash(r.payload),
                               "run_id": ctx.run_id} for r in raws], keys=["profile", "side", "entity", "record_key"])

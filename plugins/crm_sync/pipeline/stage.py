"""Stage: normalise this run's raw contacts into staging_contact; quarantine what breaks a rule.

Staging holds the newest good version of every record of each side. A row is
rewritten only when its content hash changes, so echoes of our own writes (which
load already recorded) leave it untouched.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext, log_step, utcnow
from crm_sync.pipeline.normalize import Broken, RuleBroken, canonical_contact, content_hash, timestamp
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.ops import insert_ignore, upsert
from crm_sync.warehouse.tables import quarantine, raw_record, staging_contact

ENTITY = "contact"


def quarantine_row(ctx: RunContext, side: str, raw_id: int, source_id: str | None, broken: Broken) -> dict[str, Any]:
    return {"profile": ctx.profile.name, "run_id": ctx.run_id, "side": side, "entity": ENTITY,
            "source_id": source_id, "rule": broken.rule, "detail": broken.detail, "raw_id": raw_id,
            "created_at": utcnow()}


def stage_one(ctx: RunContext, raw: sa.Row) -> dict[str, Any]:
    """One raw record to a staging row; raises RuleBroken with the first rule it breaks."""
    profile = ctx.profile
    if raw.source_id is None:
        raise RuleBroken(Broken("id_missing", f"{ctx.side_name(raw.side)} record has no id field"))
    _, updated_field = profile.record_fields(raw.side)
    values = canonical_contact(raw.payload, raw.side, profile.contact_fields(), profile.default_region)
    return {"profile": profile.name, "side": raw.side, "source_id": raw.source_id, **values,
            "updated_at": timestamp(raw.payload.get(updated_field)), "content_hash": content_hash(values),
            "raw_id": raw.id, "run_id": ctx.run_id}


def stage(ctx: RunContext) -> dict[str, Any]:
    eng = engine()
    with eng.connect() as conn:
        raws = conn.execute(sa.select(raw_record).where(
            raw_record.c.profile == ctx.profile.name, raw_record.c.run_id == ctx.run_id,
            raw_record.c.entity == ENTITY).order_by(raw_record.c.id)).all()
        current = {(r.side, r.source_id): r.content_hash for r in conn.execute(
            sa.select(staging_contact.c.side, staging_contact.c.source_id, staging_contact.c.content_hash)
            .where(staging_contact.c.profile == ctx.profile.name))}
    good, bad = [], []
    for raw in raws:
        try:
            row = stage_one(ctx, raw)
        except RuleBroken as exc:
            bad.append(quarantine_row(ctx, raw.side, raw.id, raw.source_id, exc.broken))
            continue
        if current.get((row["side"], row["source_id"])) != row["content_hash"]:
            good.append(row)
    with eng.begin() as conn:
        upsert(conn, staging_contact, good, keys=["profile", "side", "source_id"])
        insert_ignore(conn, quarantine, bad, keys=["profile", "run_id", "raw_id", "rule"])
        stats = {"staged_changed": len(good), "quarantined": len(bad), "rows": len(raws)}
        log_step(conn, ctx, "stage", stats)
    return stats

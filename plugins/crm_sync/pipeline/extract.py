"""Extract: land one side's changed contacts, as received, in raw_record."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from crm_sync.hooks.app import AppHook
from crm_sync.hooks.ghl import GHLHook
from crm_sync.pipeline.context import RunContext, extraction_window, log_step, utcnow
from crm_sync.pipeline.normalize import RuleBroken, timestamp
from crm_sync.profile import Side
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.ops import insert_ignore
from crm_sync.warehouse.tables import raw_record

ENTITY = "contact"


def _raw_row(ctx: RunContext, side: Side, payload: dict[str, Any], id_field: str, updated_field: str,
             extracted_at) -> dict[str, Any]:
    source_id = payload.get(id_field)
    source_id = str(source_id) if source_id not in (None, "") else None
    try:
        updated = timestamp(payload.get(updated_field))
    except RuleBroken:
        updated = None  # stage quarantines it with the rule; raw keeps the payload as received
    key = source_id or "sha256:" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:40]
    return {"profile": ctx.profile.name, "run_id": ctx.run_id, "side": side, "entity": ENTITY, "record_key": key,
            "source_id": source_id, "source_updated_at": updated, "payload": payload, "extracted_at": extracted_at}


def extract(ctx: RunContext, side: Side) -> dict[str, Any]:
    eng = engine()
    with eng.connect() as conn:
        window = extraction_window(conn, ctx, side, ENTITY)
    if side == "ghl":
        client = GHLHook(ctx.profile.ghl.conn_id).get_conn(page_limit=ctx.profile.ghl.page_limit)
        records = client.search_contacts(window.since, window.until)
    else:
        client = AppHook(ctx.profile.app).get_conn()
        records = client.list_changed(ENTITY, window.since, window.until)
    id_field, updated_field = ctx.profile.record_fields(side)
    try:
        extracted_at = utcnow()
        rows = [_raw_row(ctx, side, record, id_field, updated_field, extracted_at) for record in records]
    finally:
        client.close()
    stats = {"extracted": len(rows), "window_mode": window.mode, "api": client.metrics.as_dict()}
    with eng.begin() as conn:
        insert_ignore(conn, raw_record, rows, keys=["profile", "run_id", "side", "entity", "record_key"])
        log_step(conn, ctx, "extract", stats, side=side, window=window)
    return stats

"""Load: send the outbox, each row once, and record what each side now holds.

Load reads only the outbox. A row is claimed with a conditional update (pending ->
sending) so two runs can never send it both; it ends ``sent``, ``failed`` (the server
refused it: the message is kept and the batch goes on) or back to ``pending`` when the
failure was transient, for the task's retry or the next run. Creates cannot duplicate:
GHL creates go through ``/contacts/upsert`` and app creates look the email up first.
After a write, the side's response is staged and its hash stored on the link, so the
echo of our own write is recognised on the next extraction.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from crm_sync.hooks.app import AppClient, AppHook
from crm_sync.hooks.ghl import GHLClient, GHLHook
from crm_sync.http import ApiError
from crm_sync.pipeline.context import RunContext, advance_watermark, log_step, utcnow
from crm_sync.pipeline.normalize import RuleBroken, canonical_contact, content_hash, side_fields, timestamp
from crm_sync.profile import Side
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.ops import upsert
from crm_sync.warehouse.tables import outbox, run_log, staging_contact, xref

log = logging.getLogger(__name__)
ENTITY = "contact"


class TransientLoadError(RuntimeError):
    """Some writes failed transiently; they stay pending for the retry or the next run."""


def send(row: sa.Row, ctx: RunContext, ghl: GHLClient, app: AppClient) -> dict[str, Any]:
    """Perform one outbox write and return the record the side now holds."""
    fields = side_fields(row.payload, row.side, ctx.profile.contact_fields())
    if row.side == "ghl":
        return ghl.upsert_contact(fields) if row.op == "create" else ghl.update_contact(row.target_id, fields)
    if row.op == "create":
        email = row.payload.get("email")
        existing = app.lookup(ENTITY, email) if email else None
        if existing is None:
            return app.create(ENTITY, fields)
        id_field, _ = ctx.profile.record_fields("app")
        return app.update(ENTITY, str(existing[id_field]), fields)
    return app.update(ENTITY, row.target_id, fields)


def record_success(conn: sa.Connection, ctx: RunContext, row: sa.Row, held: dict[str, Any]) -> None:
    side: Side = row.side
    profile = ctx.profile
    id_field, updated_field = profile.record_fields(side)
    target_id = str(held[id_field])
    try:
        values = canonical_contact(held, side, profile.contact_fields(), profile.default_region)
        updated = timestamp(held.get(updated_field))
    except RuleBroken:  # the side reformatted a value beyond our rules: keep what we sent
        values, updated = dict(row.merged), utcnow()
    held_hash = content_hash(values)
    upsert(conn, staging_contact, [{"profile": profile.name, "side": side, "source_id": target_id, **values,
                                    "updated_at": updated, "content_hash": held_hash, "raw_id": None,
                                    "run_id": ctx.run_id}], keys=["profile", "side", "source_id"])
    link = {f"{side}_id": target_id, f"{side}_hash": held_hash, "base": row.merged, "updated_at": utcnow()}
    other = "app" if side == "ghl" else "ghl"
    sibling = conn.execute(sa.select(outbox.c.id).where(  # the other side's own write records its hash
        outbox.c.xref_id == row.xref_id, outbox.c.run_id == row.run_id, outbox.c.side == other)).first()
    if sibling is None:
        link[f"{other}_hash"] = row.source_hash
    conn.execute(sa.update(xref).where(xref.c.id == row.xref_id).values(link))
    conn.execute(sa.update(outbox).where(outbox.c.id == row.id).values(
        status="sent", target_id=target_id, sent_at=utcnow(), last_error=None))


def _claim(conn: sa.Connection, row_id: int) -> bool:
    claimed = conn.execute(sa.update(outbox).where(outbox.c.id == row_id, outbox.c.status == "pending")
                           .values(status="sending", attempts=outbox.c.attempts + 1))
    return claimed.rowcount == 1


def load(ctx: RunContext) -> dict[str, Any]:
    eng = engine()
    name = ctx.profile.name
    with eng.begin() as conn:
        # A crash between claim and result leaves "sending": resend is safe (upsert/lookup), so reclaim.
        conn.execute(sa.update(outbox).where(outbox.c.profile == name, outbox.c.status == "sending")
                     .values(status="pending"))
        rows = conn.execute(sa.select(outbox).where(outbox.c.profile == name, outbox.c.status == "pending")
                            .order_by(outbox.c.id)).all()
        if ctx.dry_run:
            conn.execute(sa.update(outbox).where(outbox.c.id.in_([r.id for r in rows])).values(status="dry_run"))
    counts = {"sent": 0, "failed": 0, "transient": 0, "dry_run": len(rows) if ctx.dry_run else 0}
    ghl = GHLHook(ctx.profile.ghl.conn_id).get_conn(page_limit=ctx.profile.ghl.page_limit)
    app = AppHook(ctx.profile.app).get_conn()
    try:
        for row in ([] if ctx.dry_run else rows):
            with eng.begin() as conn:
                if not _claim(conn, row.id):
                    continue
            try:
                held = send(row, ctx, ghl, app)
            except ApiError as exc:
                status = "pending" if exc.retriable else "failed"
                counts["transient" if exc.retriable else "failed"] += 1
                log.warning("outbox row %s (%s %s %s xref %s) %s: %s", row.id, row.op, row.side, ENTITY,
                            row.xref_id, status, exc)
                with eng.begin() as conn:
                    conn.execute(sa.update(outbox).where(outbox.c.id == row.id).values(
                        status=status, last_error=str(exc)))
                continue
            with eng.begin() as conn:
                record_success(conn, ctx, row, held)
            counts["sent"] += 1
    finally:
        ghl.close()
        app.close()
    stats = {**counts, "api": {"ghl": ghl.metrics.as_dict(), "app": app.metrics.as_dict()}}
    with eng.begin() as conn:
        log_step(conn, ctx, "load", stats)
        if not counts["transient"]:
            _advance_watermarks(conn, ctx)
    if counts["transient"]:
        raise TransientLoadError(f"{counts['transient']} write(s) failed transiently and stay pending")
    return stats


def _advance_watermarks(conn: sa.Connection, ctx: RunContext) -> None:
    windows = conn.execute(sa.select(run_log.c.side, run_log.c.window_end).where(
        run_log.c.profile == ctx.profile.name, run_log.c.run_id == ctx.run_id, run_log.c.step == "extract")).all()
    for side, window_end in windows:
        if window_end is not None:
            advance_watermark(conn, ctx.profile.name, side, ENTITY, window_end)

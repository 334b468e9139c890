"""Retention: raw records, quarantine rows, report files and webhook events (of the profile's
location, and those no profile routes) older than the profile's ``retention_days`` are deleted
at the end of every run, so personal data does not pile up.

Staging, links (xref), the outbox and the run log are the sync's memory and are kept. A
quarantine row whose raw record is gone is gone too: both go by the same age.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.warehouse.tables import quarantine, raw_record, webhook_done, webhook_inbox


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (reports hold names, emails and payloads)."""
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file keeps its mode on O_TRUNC
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def cleanup(conn: sa.Connection, ctx: RunContext, reports: Path) -> dict[str, Any]:
    """Delete this profile's expired raw records, quarantine rows and report files; say how many."""
    days = ctx.profile.retention_days
    if days is None:
        return {"retention_days": None}
    cutoff = utcnow() - timedelta(days=days)
    raws = conn.execute(sa.delete(raw_record).where(raw_record.c.profile == ctx.profile.name,
                                                    raw_record.c.extracted_at < cutoff)).rowcount
    bad = conn.execute(sa.delete(quarantine).where(quarantine.c.profile == ctx.profile.name,
                                                   quarantine.c.created_at < cutoff)).rowcount
    events = _expired_events(conn, ctx.profile.ghl.location_id, cutoff)
    files = 0
    for path in reports.glob("*"):
        if path.suffix in (".html", ".json") and path.stat().st_mtime < cutoff.timestamp():
            path.unlink(missing_ok=True)
            files += 1
    return {"retention_days": days, "raw_records_deleted": raws, "quarantine_deleted": bad,
            "report_files_deleted": files, "webhook_events_deleted": events}


def _expired_events(conn: sa.Connection, location_id: str | None, cutoff) -> int:
    """Delete the webhook events received before ``cutoff`` for this location, or routed to no profile."""
    mine = webhook_inbox.c.location_id == location_id if location_id else sa.false()
    expired = sa.select(webhook_inbox.c.id).where(webhook_inbox.c.received_at < cutoff,
                                                 sa.or_(mine, ~webhook_inbox.c.routed))
    conn.execute(sa.delete(webhook_done).where(webhook_done.c.inbox_id.in_(expired)))
    return conn.execute(sa.delete(webhook_inbox).where(webhook_inbox.c.id.in_(expired))).rowcount

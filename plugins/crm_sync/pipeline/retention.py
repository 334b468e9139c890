"""Retention: no personal data outlives the profile's ``retention_days``. At the end of every run
(the report step), for what is older than that:

- raw records, quarantine rows (their detail quotes values), report files and webhook events (of
  the profile's location, and those no profile routes) are deleted. A quarantine row whose raw
  record is gone is gone too: both go by the same age.
- outbox rows that will not be sent again (sent, superseded, discarded) keep their ids, link,
  target id, idempotency key and status, so exactly-once still holds, but lose their values: the
  payload, merged record and ``before`` (what the write replaced) become ``{}``, each conflict
  decision keeps which field, which side won and why, not the values, and ``last_error`` (it may
  quote the server's answer) goes; their ``sync_changelog`` rows lose the same values. A
  ``failed`` row that old is discarded that way (nobody retried it in all that time); a
  ``dry_run`` row is deleted (it was never sent: a real run plans it again when still due).
  ``pending`` and ``sending`` rows are writes still to be made and stay whole.
- run_log rows keep their figures and handoff (ids only); the data-quality samples' values and
  the dead letters' errors are removed (and of a failed task's ``error``, where kept, its type stays).
- review decisions keep the pair's ids, the decision and the link; who decided or undid it goes.

A scrubbed row gets ``scrubbed_at`` (migration 0010), so each run touches only what newly aged
(at most ``PER_RUN`` rows a table, oldest first: a backlog takes a few runs).
Staging, links (xref, whose ``base`` is the last merged record), the review queue (ids and how
they matched) and unsent writes are the sync's current state, not history, and are kept.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.warehouse.tables import (outbox, quarantine, raw_record, review_decision, run_log, sync_changelog,
                                       sync_snapshot, webhook_done, webhook_inbox)

log = logging.getLogger(__name__)
REMOVED = "(removed after retention_days)"
KEPT_STATUSES = ("sent", "superseded", "discarded")  # never sent again: their values are history
DECISION_VALUES = ("ghl", "app", "value")  # crm_sync.pipeline.merge: each side's value and the winner's
CHUNK = 500
PER_RUN = 50_000  # rows scrubbed per table and run, oldest first: a first run after an upgrade stays short


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (reports hold names, emails and payloads)."""
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file keeps its mode on O_TRUNC
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def cleanup(conn: sa.Connection, ctx: RunContext, reports: Path) -> dict[str, Any]:
    """Delete or scrub this profile's personal data older than ``retention_days``; say how much."""
    days = ctx.profile.retention_days
    if days is None:
        return {"retention_days": None}
    name, now = ctx.profile.name, utcnow()
    cutoff = now - timedelta(days=days)
    raws = conn.execute(sa.delete(raw_record).where(raw_record.c.profile == name,
                                                    raw_record.c.extracted_at < cutoff)).rowcount
    bad = conn.execute(sa.delete(quarantine).where(quarantine.c.profile == name,
                                                   quarantine.c.created_at < cutoff)).rowcount
    events = _expired_events(conn, _location(ctx), cutoff)
    files = 0
    for path in reports.glob("*"):
        if path.suffix in (".html", ".json") and path.stat().st_mtime < cutoff.timestamp():
            path.unlink(missing_ok=True)
            files += 1
    return {"retention_days": days, "raw_records_deleted": raws, "quarantine_deleted": bad,
            "report_files_deleted": files, "webhook_events_deleted": events,
            **scrub_outbox(conn, name, cutoff, now), "run_log_scrubbed": scrub_run_log(conn, name, cutoff, now),
            "review_decisions_scrubbed": scrub_decisions(conn, name, cutoff, now)}


def _location(ctx: RunContext) -> str | None:
    """The profile's GHL location: named in the profile, or else in its GHL connection."""
    if ctx.profile.ghl.location_id:
        return ctx.profile.ghl.location_id
    from crm_sync.hooks.ghl import GHLHook

    hook = GHLHook(ctx.profile.ghl.conn_id, location_id=ctx.profile.ghl.location_id)
    try:
        return hook.extras(hook.connection()).get("location_id")
    except Exception as exc:  # noqa: BLE001 - the connection is unreadable here: the inbox's own pruning remains
        log.warning("retention: the location of connection %s is unknown (%s); only unrouted webhook events "
                    "expire in this run", ctx.profile.ghl.conn_id, type(exc).__name__)
        return None


def _expired_events(conn: sa.Connection, location_id: str | None, cutoff) -> int:
    """Delete the webhook events received before ``cutoff`` for this location, or routed to no profile."""
    mine = webhook_inbox.c.location_id == location_id if location_id else sa.false()
    expired = sa.select(webhook_inbox.c.id).where(webhook_inbox.c.received_at < cutoff,
                                                 sa.or_(mine, ~webhook_inbox.c.routed))
    conn.execute(sa.delete(webhook_done).where(webhook_done.c.inbox_id.in_(expired)))
    return conn.execute(sa.delete(webhook_inbox).where(webhook_inbox.c.id.in_(expired))).rowcount


# --- scrubbing: what stays is ids, keys, statuses and figures ---------------------------------

def _decisions_without_values(decisions: Any) -> list[dict[str, Any]]:
    """Which field, which side won and why; the values each side held (and the winner's) emptied.
    The keys stay, so the report of an old run reads the same, less the values."""
    return [{**d, **{key: "" for key in DECISION_VALUES if key in d}} if isinstance(d, dict) else {}
            for d in decisions or []]


def scrub_outbox(conn: sa.Connection, profile: str, cutoff: datetime, now: datetime) -> dict[str, int]:
    """Empty the values of aged writes that will not be sent again (see the module's docstring)."""
    aged = (outbox.c.profile == profile) & (outbox.c.created_at < cutoff)
    dry_rows = sa.select(outbox.c.id).where(aged, outbox.c.status == "dry_run")
    conn.execute(sa.delete(sync_changelog).where(sync_changelog.c.outbox_id.in_(dry_rows)))
    dry = conn.execute(sa.delete(outbox).where(aged, outbox.c.status == "dry_run")).rowcount
    failed = conn.execute(sa.update(outbox).where(aged, outbox.c.status == "failed").values(
        status="discarded", last_error=f"discarded by retention: failed and never retried for {REMOVED}")).rowcount
    rows = conn.execute(sa.select(outbox.c.id, outbox.c.decisions, outbox.c.before, outbox.c.status).where(
        aged, outbox.c.status.in_(KEPT_STATUSES), outbox.c.scrubbed_at.is_(None)).order_by(outbox.c.id)
        .limit(PER_RUN)).all()
    before = sa.bindparam("emptied_before", type_=outbox.c.before.type)  # a create's stays NULL
    update = sa.update(outbox).where(outbox.c.id == sa.bindparam("row_id")).values(
        payload={}, merged={}, before=before, decisions=sa.bindparam("emptied", type_=sa.JSON), scrubbed_at=now,
        last_error=sa.case((outbox.c.last_error.like("discarded by retention:%"), outbox.c.last_error), else_=None))
    logged = sa.update(sync_changelog).where(sync_changelog.c.outbox_id == sa.bindparam("row_id")).values(
        after={}, before=before, decisions=sa.bindparam("emptied", type_=sa.JSON), error=None,
        status=sa.bindparam("outbox_status"))
    for start in range(0, len(rows), CHUNK):
        emptied = [{"row_id": r.id, "emptied": _decisions_without_values(r.decisions),
                    "emptied_before": None if r.before is None else {}, "outbox_status": r.status}
                   for r in rows[start:start + CHUNK]]
        conn.execute(update, emptied)
        conn.execute(logged, emptied)
    # a write's error may quote the server's answer; a quarantine rule or a review reason does not
    conn.execute(sa.update(sync_snapshot).where(
        sync_snapshot.c.profile == profile, sync_snapshot.c.updated_at < cutoff, sync_snapshot.c.detail.is_not(None),
        sync_snapshot.c.status.not_in(("quarantined", "review"))).values(detail=None))
    return {"outbox_scrubbed": len(rows), "outbox_failed_discarded": failed, "outbox_dry_run_deleted": dry}


def stats_without_values(stats: Any) -> Any:
    """A step's stats less what may quote a record: data-quality sample values, dead-letter errors.
    Also what a task returns to Airflow (its XCom, kept in Airflow's database, not ours)."""
    if not isinstance(stats, dict):
        return stats
    stats = dict(stats)
    if isinstance(stats.get("expectations"), list):
        stats["expectations"] = [
            {**e, "samples": [{**s, "value": REMOVED} if isinstance(s, dict) else REMOVED
                              for s in e.get("samples") or []]} if isinstance(e, dict) else e
            for e in stats["expectations"]]
    if isinstance(stats.get("dead_letter"), list):
        stats["dead_letter"] = [{**d, "error": REMOVED} if isinstance(d, dict) else REMOVED
                                for d in stats["dead_letter"]]
    return stats


def scrub_run_log(conn: sa.Connection, profile: str, cutoff: datetime, now: datetime) -> int:
    """Take the values out of aged run_log rows' stats (their figures and handoff stay)."""
    c = run_log.c
    has_error = "error" in c  # a failed task's exception, where the schema keeps it: only its type stays
    rows = conn.execute(sa.select(c.run_id, c.step, c.side, c.stats, *([c.error] if has_error else [])).where(
        c.profile == profile, c.finished_at < cutoff, c.scrubbed_at.is_(None)).order_by(c.finished_at)
        .limit(PER_RUN)).all()
    update = sa.update(run_log).where(c.profile == profile, c.run_id == sa.bindparam("r_run"),
                                      c.step == sa.bindparam("r_step"), c.side == sa.bindparam("r_side")).values(
        stats=sa.bindparam("r_stats", type_=sa.JSON), scrubbed_at=now,
        **({"error": sa.bindparam("r_error")} if has_error else {}))
    for start in range(0, len(rows), CHUNK):
        conn.execute(update, [{"r_run": r.run_id, "r_step": r.step, "r_side": r.side,
                               "r_stats": stats_without_values(r.stats),
                               **({"r_error": r.error and r.error.split(":", 1)[0]} if has_error else {})}
                              for r in rows[start:start + CHUNK]])
    return len(rows)


def scrub_decisions(conn: sa.Connection, profile: str, cutoff: datetime, now: datetime) -> int:
    """Aged review decisions forget who made (and who undid) them; the pair, decision and link stay."""
    c = review_decision.c
    decided = conn.execute(sa.update(review_decision).where(
        c.profile == profile, c.decided_at < cutoff, c.scrubbed_at.is_(None)).values(
        decided_by=REMOVED, scrubbed_at=now)).rowcount
    conn.execute(sa.update(review_decision).where(  # an undo made after the decision's own scrub ages later
        c.profile == profile, c.undone_at < cutoff, c.undone_by != REMOVED).values(undone_by=REMOVED))
    return decided

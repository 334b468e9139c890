"""What every step knows about its run, and the window an extraction covers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from crm_sync.profile import Profile, Side, profile_by_name
from crm_sync.timezones import utcnow
from crm_sync.warehouse.ops import upsert
from crm_sync.warehouse.tables import run_log, sync_state

INTERVAL_RUN_TYPES = {"scheduled", "backfill"}


@dataclass(frozen=True)
class RunContext:
    profile: Profile
    run_id: str
    run_type: str
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    dry_run: bool = False
    dag_id: str | None = None  # the profile's DAG or its fast lane; None outside Airflow
    started_at: datetime | None = None  # when the DAG run started (the age of the webhook events it took)

    @classmethod
    def from_airflow(cls, profile_name: str, context: dict[str, Any]) -> RunContext:
        profile = profile_by_name(profile_name)
        run = context["dag_run"]
        run_type = getattr(run.run_type, "value", run.run_type)
        dry_run = context["params"].get("dry_run")
        return cls(profile=profile, run_id=run.run_id, run_type=str(run_type),
                   interval_start=context.get("data_interval_start"), interval_end=context.get("data_interval_end"),
                   dry_run=profile.dry_run if dry_run is None else bool(dry_run),
                   dag_id=getattr(run, "dag_id", None), started_at=getattr(run, "start_date", None))

    def side_name(self, side: Side) -> str:
        return "ghl" if side == "ghl" else self.profile.name


@dataclass(frozen=True)
class Window:
    since: datetime | None
    until: datetime | None
    mode: str  # "interval", "watermark" or "initial"
    started_at: datetime
    stopped: bool = False  # the read stopped early (GHL's daily budget): only ``until`` was reached

    @property
    def watermark_after(self) -> datetime | None:
        """Where the watermark may move once this window is synced (None: nowhere)."""
        return self.until if self.stopped else self.until or self.started_at


def _as_utc(moment: datetime) -> datetime:
    """A plain aware UTC datetime: Airflow hands out pendulum DateTimes, whose arithmetic with a
    stdlib timezone drops the zone (interval_start - overlap came back naive)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return datetime.fromtimestamp(moment.timestamp(), UTC)


def watermark(conn: sa.Connection, profile: str, side: Side, entity: str) -> datetime | None:
    row = conn.execute(sa.select(sync_state.c.watermark).where(
        sync_state.c.profile == profile, sync_state.c.side == side, sync_state.c.entity == entity)).first()
    return _as_utc(row.watermark) if row else None


def extraction_window(conn: sa.Connection, ctx: RunContext, side: Side, entity: str) -> Window:
    """Scheduled and backfill runs read their data interval; manual runs resume from the
    watermark; the very first sync of a side takes everything (there is nothing to diff against).
    A scheduled run whose interval starts after the watermark (the scheduler was down, and
    catchup is off) reads from the watermark, so the intervals it skipped are not lost."""
    now = utcnow()
    mark = watermark(conn, ctx.profile.name, side, entity)
    overlap = timedelta(minutes=ctx.profile.overlap_minutes)
    if mark is None:
        return Window(None, None, "initial", now)
    has_interval = ctx.interval_start is not None and ctx.interval_end is not None \
        and ctx.interval_start < ctx.interval_end
    if ctx.run_type in INTERVAL_RUN_TYPES and has_interval:
        start = _as_utc(ctx.interval_start)
        if ctx.run_type == "scheduled" and mark < start:
            start = mark
        return Window(start - overlap, _as_utc(ctx.interval_end), "interval", now)
    return Window(mark - overlap, None, "watermark", now)


def advance_watermark(conn: sa.Connection, profile: str, side: Side, entity: str, moment: datetime) -> None:
    current = watermark(conn, profile, side, entity)
    if current is None or moment > current:
        upsert(conn, sync_state, [{"profile": profile, "side": side, "entity": entity, "watermark": moment,
                                   "updated_at": utcnow()}], keys=["profile", "side", "entity"])


def log_step(conn: sa.Connection, ctx: RunContext, step: str, stats: dict[str, Any], side: str = "-",
             window: Window | None = None) -> None:
    upsert(conn, run_log, [{
        "profile": ctx.profile.name, "run_id": ctx.run_id, "step": step, "side": side, "run_type": ctx.run_type,
        "window_start": window.since if window else None,
        "window_end": window.watermark_after if window else None,
        "stats": stats, "finished_at": utcnow(), "dry_run": ctx.dry_run, "dag_id": ctx.dag_id,
        "error": None,  # done: no error (any more)
    }], keys=["profile", "run_id", "step", "side"])

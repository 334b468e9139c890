"""What the console shows, read from the warehouse only (run_log, quarantine, outbox, raw_record):
it works whatever the executor, since nothing is read from a worker's disk.

The pipeline and the warehouse are imported when a page is asked for, not when the plugin loads:
Airflow imports the plugin (and so this app) in every component."""

from __future__ import annotations

from typing import Any

from typing import TYPE_CHECKING

import sqlalchemy as sa
from fastapi import HTTPException

if TYPE_CHECKING:
    from crm_sync.profile import Profile

RUNS_SHOWN = 100


def profiles() -> list[Profile]:
    from crm_sync.profile import usable_profiles

    return sorted(usable_profiles()[0], key=lambda p: p.dag_id)


def profile_of(dag_id: str) -> Profile:
    """The profile behind a crm-sync DAG; 404 for any other DAG (the UI shows our tab on every run)."""
    for profile in profiles():
        if profile.dag_id == dag_id:
            return profile
    raise HTTPException(404, f"{dag_id} is not a crm-sync DAG: no profile in include/profiles has that dag_id")


def run_ids(conn: sa.Connection, profile: Profile, limit: int = RUNS_SHOWN) -> list[str]:
    """The profile's runs in the warehouse, newest first (by when their last step finished)."""
    from crm_sync.warehouse.tables import run_log

    newest = sa.func.max(run_log.c.finished_at)
    return list(conn.execute(sa.select(run_log.c.run_id).where(run_log.c.profile == profile.name)
                             .group_by(run_log.c.run_id).order_by(newest.desc()).limit(limit)).scalars())


def engine() -> sa.Engine:
    from crm_sync.warehouse.db import engine as warehouse

    return warehouse()


def pending_counts() -> dict[str, int]:
    """Per DAG, how many ambiguous matches wait in its review queue."""
    from crm_sync import review

    with engine().connect() as conn:
        return {profile.dag_id: len(review.pending(conn, profile)) for profile in profiles()}


def runs(profile: Profile) -> list[dict[str, Any]]:
    from crm_sync.pipeline.report import build_report

    with engine().connect() as conn:
        return [build_report(conn, profile, run_id) for run_id in run_ids(conn, profile)]


def latest(profile: Profile) -> dict[str, Any] | None:
    from crm_sync.pipeline.report import summarize

    with engine().connect() as conn:
        ids = run_ids(conn, profile, limit=1)
        return summarize(conn, profile.name, ids[0]) if ids else None


def report(profile: Profile, run_id: str) -> dict[str, Any]:
    from crm_sync.pipeline.report import build_report
    from crm_sync.warehouse.tables import run_log

    with engine().connect() as conn:
        exists = conn.execute(sa.select(run_log.c.run_id).where(
            run_log.c.profile == profile.name, run_log.c.run_id == run_id).limit(1)).first()
        if exists is None:
            raise HTTPException(404, f"no run {run_id!r} of {profile.dag_id} in the warehouse (yet)")
        return build_report(conn, profile, run_id)

"""What the console shows, read from the warehouse only (run_log, quarantine, outbox, raw_record):
it works whatever the executor, since nothing is read from a worker's disk."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import HTTPException

from crm_sync.pipeline.report import build_report, summarize
from crm_sync.profile import Profile, usable_profiles
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.tables import run_log

RUNS_SHOWN = 100


def profiles() -> list[Profile]:
    return sorted(usable_profiles()[0], key=lambda p: p.dag_id)


def profile_of(dag_id: str) -> Profile:
    """The profile behind a crm-sync DAG; 404 for any other DAG (the UI shows our tab on every run)."""
    for profile in profiles():
        if profile.dag_id == dag_id:
            return profile
    raise HTTPException(404, f"{dag_id} is not a crm-sync DAG: no profile in include/profiles has that dag_id")


def run_ids(conn: sa.Connection, profile: Profile, limit: int = RUNS_SHOWN) -> list[str]:
    """The profile's runs in the warehouse, newest first (by when their last step finished)."""
    newest = sa.func.max(run_log.c.finished_at)
    return list(conn.execute(sa.select(run_log.c.run_id).where(run_log.c.profile == profile.name)
                             .group_by(run_log.c.run_id).order_by(newest.desc()).limit(limit)).scalars())


def pending_counts() -> dict[str, int]:
    """Per DAG, how many ambiguous matches wait in its review queue."""
    from crm_sync import review

    with engine().connect() as conn:
        return {profile.dag_id: len(review.pending(conn, profile)) for profile in profiles()}


def runs(profile: Profile) -> list[dict[str, Any]]:
    with engine().connect() as conn:
        return [build_report(conn, profile, run_id) for run_id in run_ids(conn, profile)]


def latest(profile: Profile) -> dict[str, Any] | None:
    with engine().connect() as conn:
        ids = run_ids(conn, profile, limit=1)
        return summarize(conn, profile.name, ids[0]) if ids else None


def report(profile: Profile, run_id: str) -> dict[str, Any]:
    with engine().connect() as conn:
        exists = conn.execute(sa.select(run_log.c.run_id).where(
            run_log.c.profile == profile.name, run_log.c.run_id == run_id).limit(1)).first()
        if exists is None:
            raise HTTPException(404, f"no run {run_id!r} of {profile.dag_id} in the warehouse (yet)")
        return build_report(conn, profile, run_id)

"""What the console shows, read from the warehouse only (run_log, quarantine, outbox, raw_record):
it works whatever the executor, since nothing is read from a worker's disk. Each function reads
through the request's connection (crm_sync.web.dependencies.WarehouseConnection).

The pipeline is imported when a page is asked for, not when the plugin loads: Airflow imports the
plugin in every component."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import HTTPException

if TYPE_CHECKING:
    from crm_sync.profile import Profile


def profiles() -> list[Profile]:
    from crm_sync.profile import usable_profiles

    return sorted(usable_profiles()[0], key=lambda p: p.dag_id)


def profile_of(dag_id: str) -> Profile:
    """The profile behind a crm-sync DAG; 404 for any other DAG (the UI shows our tab on every run)."""
    for profile in profiles():
        if profile.dag_id == dag_id:
            return profile
    raise HTTPException(404, f"{dag_id} is not a crm-sync DAG: no profile in include/profiles has that dag_id")


def pending_counts(conn: sa.Connection) -> dict[str, int]:
    """Per DAG, how many ambiguous matches wait in its review queue."""
    from crm_sync import review

    return {profile.dag_id: len(review.pending(conn, profile)) for profile in profiles()}


def runs(conn: sa.Connection, profile: Profile) -> list[dict[str, Any]]:
    """The profile's newest runs with their counts (not their writes: see crm_sync.pipeline.run_list)."""
    from crm_sync.pipeline.run_list import list_runs

    return list_runs(conn, profile)


def latest(conn: sa.Connection, profile: Profile) -> dict[str, Any] | None:
    from crm_sync.pipeline.run_list import list_runs

    newest = list_runs(conn, profile, limit=1)
    return newest[0] if newest else None


def report(conn: sa.Connection, profile: Profile, run_id: str) -> dict[str, Any]:
    from crm_sync.pipeline.report import build_report
    from crm_sync.warehouse.tables import run_log

    exists = conn.execute(sa.select(run_log.c.run_id).where(
        run_log.c.profile == profile.name, run_log.c.run_id == run_id).limit(1)).first()
    if exists is None:
        raise HTTPException(404, f"no run {run_id!r} of {profile.dag_id} in the warehouse (yet)")
    return build_report(conn, profile, run_id)

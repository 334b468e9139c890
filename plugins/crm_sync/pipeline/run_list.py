"""The runs list: a profile's runs, newest first, a page at a time (offset and limit, in SQL), each
with its report's per-side counts, in three queries whatever the number of runs (which runs, their
run_log rows, and one counts query grouped by run). Filtered by state or dry run, the profile's
run_log rows are read to weigh each run's state (crm_sync.pipeline.run_state); its writes never are.
The console's index lists the newest runs of a page of profiles the same way, in two queries in all
(`newest_runs_of`).

The numbers are the report's own: the same counts query (crm_sync.pipeline.report_pages.counts) and
the same `side_summary` (tests/integration/test_run_list.py holds the two equal).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from crm_sync.pipeline.report import run_facts, side_summary
from crm_sync.pipeline.report_pages import counts, counts_of, tallies
from crm_sync.pipeline.run_state import logged_dry_run, run_state
from crm_sync.pipeline.run_trigger import one_task, run_dag_id, run_trigger
from crm_sync.profile import Profile
from crm_sync.warehouse.tables import run_log

RUNS_SHOWN = 100
SIDES = ("ghl", "app")
STATES = ("running", "failed", "success")


def newest_run_ids(conn: sa.Connection, profile: str, limit: int = RUNS_SHOWN, offset: int = 0) -> list[str]:
    """The profile's runs in the warehouse, newest first (by when their last step finished), from
    the ``offset``-th on."""
    newest = sa.func.max(run_log.c.finished_at)
    return list(conn.execute(sa.select(run_log.c.run_id).where(run_log.c.profile == profile)
                             .group_by(run_log.c.run_id).order_by(newest.desc(), run_log.c.run_id.desc())
                             .limit(limit).offset(offset)).scalars())


def run_count(conn: sa.Connection, profile: str) -> int:
    return conn.execute(sa.select(sa.func.count(sa.distinct(run_log.c.run_id)))
                        .where(run_log.c.profile == profile)).scalar_one()


def chosen_run_ids(conn: sa.Connection, profile: Profile, state: str | None = None, dry_run: bool | None = None
                   ) -> list[str]:
    """Every run of the profile in ``state`` (running, failed, success) and with that ``dry_run``,
    newest first. A run's state comes from its run_log rows (crm_sync.pipeline.run_state), which
    SQL cannot weigh (failed tries, validate's verdict): its rows are read, not its writes."""
    steps: dict[str, dict[tuple[str, str], Any]] = defaultdict(dict)
    for row in conn.execute(sa.select(run_log).where(run_log.c.profile == profile.name)):
        steps[row.run_id][(row.step, row.side)] = row
    kept = []
    for run_id, mine in steps.items():
        dag_id = run_dag_id(mine, profile)
        if state and run_state(mine, profile.name, dag_id, run_id, one_task(mine, profile))["state"] != state:
            continue
        if dry_run is not None and run_facts(profile, {"run_id": run_id}, _report_stats(mine),
                                             logged_dry_run(mine))["dry_run"] != dry_run:
            continue
        kept.append((max(row.finished_at for row in mine.values()), run_id))
    return [run_id for _, run_id in sorted(kept, reverse=True)]


def _report_stats(steps: dict[tuple[str, str], Any]) -> dict[str, Any] | None:
    report = steps.get(("report", "-"))
    return report.stats if report else None


def runs_page(conn: sa.Connection, profile: Profile, limit: int = RUNS_SHOWN, offset: int = 0,
              state: str | None = None, dry_run: bool | None = None) -> tuple[list[dict[str, Any]], int]:
    """A page of the profile's runs, newest first, from the ``offset``-th on, and how many runs there
    are in all (those in ``state`` and with that ``dry_run``, when asked)."""
    if state is None and dry_run is None:
        return list_runs(conn, profile, limit, offset), run_count(conn, profile.name)
    run_ids = chosen_run_ids(conn, profile, state, dry_run)
    return runs_of(conn, profile, run_ids[offset:offset + limit]), len(run_ids)


def list_runs(conn: sa.Connection, profile: Profile, limit: int = RUNS_SHOWN, offset: int = 0
              ) -> list[dict[str, Any]]:
    """Newest first: per run its id, type, title, facts, state (running, failed: which task, why),
    writes sent, rows quarantined, per side the counts of its report (`summarize`'s ``sides``), and
    its trigger (crm_sync.pipeline.run_trigger: from the same run_log rows, no query of its own)."""
    return runs_of(conn, profile, newest_run_ids(conn, profile.name, limit, offset))


def runs_of(conn: sa.Connection, profile: Profile, run_ids: list[str]) -> list[dict[str, Any]]:
    """`list_runs` of these runs, in this order."""
    if not run_ids:
        return []
    steps: dict[str, dict[tuple[str, str], Any]] = defaultdict(dict)
    for row in conn.execute(sa.select(run_log).where(run_log.c.profile == profile.name,
                                                     run_log.c.run_id.in_(run_ids))):
        steps[row.run_id][(row.step, row.side)] = row
    counted = counts(conn, profile.name, run_ids)
    return [_run(profile, run_id, steps[run_id], counted[run_id]) for run_id in run_ids]


def newest_runs_of(conn: sa.Connection, profiles: list[Profile], limit: int) -> dict[str, list[dict[str, Any]]]:
    """`list_runs` of each profile (its newest ``limit`` runs), by profile name, in two queries whatever
    the number of profiles: their run_log rows (the runs ranked per profile in SQL) and one counts query."""
    if not profiles:
        return {}
    by_name = {profile.name: profile for profile in profiles}
    rank = sa.func.row_number().over(partition_by=run_log.c.profile, order_by=(
        sa.func.max(run_log.c.finished_at).desc(), run_log.c.run_id.desc()))
    ranked = (sa.select(run_log.c.profile, run_log.c.run_id, rank.label("rank"))
              .where(run_log.c.profile.in_(list(by_name))).group_by(run_log.c.profile, run_log.c.run_id).subquery())
    rows = conn.execute(sa.select(run_log, ranked.c.rank).join(ranked, sa.and_(
        run_log.c.profile == ranked.c.profile, run_log.c.run_id == ranked.c.run_id)).where(ranked.c.rank <= limit)
        .order_by(run_log.c.profile, ranked.c.rank)).all()
    steps: dict[tuple[str, str], dict[tuple[str, str], Any]] = defaultdict(dict)
    for row in rows:
        steps[row.profile, row.run_id][(row.step, row.side)] = row
    counted = counts_of(conn, list(by_name), sorted({run_id for _, run_id in steps}))
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in by_name}
    for (name, run_id), mine in steps.items():  # newest first: rows came by rank
        found[name].append(_run(by_name[name], run_id, mine, counted[name, run_id]))
    return found


def _run(profile: Profile, run_id: str, steps: dict[tuple[str, str], Any], counts: dict[str, Any]) -> dict[str, Any]:
    tally = tallies(counts)
    summary = {
        "profile": profile.name, "run_id": run_id, "timezone": str(profile.zone),
        "run_type": next((s.run_type for s in steps.values()), None),
        "sides": {side: side_summary(steps, side, tally[side], profile.zone) for side in SIDES},
        "writes_sent": sum(counts.get(side, {}).get("sent", 0) for side in SIDES),
        "quarantined": counts.get("-", {}).get("quarantined", 0),
        **run_state(steps, profile.name, run_dag_id(steps, profile), run_id, one_task(steps, profile)),
    }
    report = steps.get(("report", "-"))
    facts = run_facts(profile, summary, report.stats if report else None, logged_dry_run(steps))
    return {**summary, **facts, "trigger": run_trigger(steps, profile, facts["interval_start"], facts["interval_end"])}

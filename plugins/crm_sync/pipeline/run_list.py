"""The runs list: a profile's newest runs, each with its report's per-side counts, in three queries
whatever the number of runs (which runs, their run_log rows, and one counts query grouped by run).

A run's report reads its writes and quarantined rows with their payloads; the list needs only how
many there are, so the database counts them. The numbers are the report's own: the same
`side_summary` turns them into a side's columns (tests/integration/test_run_list.py holds the two equal).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from crm_sync.pipeline.report import DONE, UNSENT, run_facts, side_summary
from crm_sync.pipeline.run_state import logged_dry_run, run_state
from crm_sync.profile import Profile
from crm_sync.warehouse.tables import outbox, quarantine, raw_record, run_log

RUNS_SHOWN = 100
SIDES = ("ghl", "app")
SENT_AS = {"create": "created", "update": "updated", "delete": "deleted", "archive": "deleted"}


def newest_run_ids(conn: sa.Connection, profile: str, limit: int = RUNS_SHOWN) -> list[str]:
    """The profile's runs in the warehouse, newest first (by when their last step finished)."""
    newest = sa.func.max(run_log.c.finished_at)
    return list(conn.execute(sa.select(run_log.c.run_id).where(run_log.c.profile == profile)
                             .group_by(run_log.c.run_id).order_by(newest.desc()).limit(limit)).scalars())


def list_runs(conn: sa.Connection, profile: Profile, limit: int = RUNS_SHOWN) -> list[dict[str, Any]]:
    """Newest first: per run its id, type, title, facts, state (running, failed: which task, why),
    writes sent, rows quarantined, and per side the counts of its report (`summarize`'s ``sides``)."""
    run_ids = newest_run_ids(conn, profile.name, limit)
    if not run_ids:
        return []
    steps: dict[str, dict[tuple[str, str], Any]] = defaultdict(dict)
    for row in conn.execute(sa.select(run_log).where(run_log.c.profile == profile.name,
                                                     run_log.c.run_id.in_(run_ids))):
        steps[row.run_id][(row.step, row.side)] = row
    counts = _counts(conn, profile.name, run_ids)
    return [_run(profile, run_id, steps[run_id], counts[run_id]) for run_id in run_ids]


def _run(profile: Profile, run_id: str, steps: dict[tuple[str, str], Any], counts: dict[str, Any]) -> dict[str, Any]:
    tallies = {side: {"landed": 0, "quarantined": 0, "created": 0, "updated": 0, "deleted": 0, "failed": 0,
                      "planned": 0, **counts.get(side, {})} for side in SIDES}
    summary = {
        "profile": profile.name, "run_id": run_id, "timezone": str(profile.zone),
        "run_type": next((s.run_type for s in steps.values()), None),
        "sides": {side: side_summary(steps, side, tallies[side], profile.zone) for side in SIDES},
        "writes_sent": sum(counts.get(side, {}).get("sent", 0) for side in SIDES),
        "quarantined": counts.get("-", {}).get("quarantined", 0),
        **run_state(steps, profile.name, profile.dag_id, run_id),
    }
    report = steps.get(("report", "-"))
    return {**summary, **run_facts(profile, summary, report.stats if report else None, logged_dry_run(steps))}


def _counts(conn: sa.Connection, profile: str, run_ids: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """Per run, per side ("-": the whole run): writes by outcome, rows quarantined (per side: those the
    run read), rows landed. One query: each part answers (run_id, side, what, outcome or None, count).
    A write is counted as its report counts it (crm_sync.pipeline.report.seen_by): sent or failed for
    the run whose load sent it, planned (not sent) for the run that planned it, if another sent it."""
    def of(table: sa.Table) -> tuple:
        return table.c.profile == profile, table.c.run_id.in_(run_ids)

    def named(what: str) -> Any:
        return sa.literal(what, sa.String)

    n, no_status = sa.func.count(), sa.cast(sa.null(), sa.String)
    bad_rows = sa.func.count(sa.distinct(quarantine.c.raw_id))
    handled = sa.func.coalesce(outbox.c.sent_run_id, outbox.c.run_id)
    done = (sa.select(handled, outbox.c.side, outbox.c.op, outbox.c.status, n)
            .where(outbox.c.profile == profile, handled.in_(run_ids), outbox.c.status.in_(DONE))
            .group_by(handled, outbox.c.side, outbox.c.op, outbox.c.status))
    planned = (sa.select(outbox.c.run_id, outbox.c.side, outbox.c.op, named("planned"), n)
               .where(*of(outbox), sa.or_(outbox.c.status.in_(UNSENT),
                                          sa.and_(outbox.c.status.in_(DONE), handled != outbox.c.run_id)))
               .group_by(outbox.c.run_id, outbox.c.side, outbox.c.op))
    read_here = sa.and_(raw_record.c.id == quarantine.c.raw_id, raw_record.c.run_id == quarantine.c.run_id)
    bad = (sa.select(quarantine.c.run_id, quarantine.c.side, named("quarantined"), no_status, bad_rows)
           .join(raw_record, read_here).where(*of(quarantine)).group_by(quarantine.c.run_id, quarantine.c.side))
    bad_in_run = (sa.select(quarantine.c.run_id, named("-"), named("quarantined"), no_status, bad_rows)
                  .where(*of(quarantine)).group_by(quarantine.c.run_id))
    landed = (sa.select(raw_record.c.run_id, raw_record.c.side, named("landed"), no_status, n)
              .where(*of(raw_record)).group_by(raw_record.c.run_id, raw_record.c.side))

    counts: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for run_id, side, what, status, number in conn.execute(sa.union_all(done, planned, bad, bad_in_run, landed)):
        mine = counts[run_id][side]
        if status is None:  # rows counted
            mine[what] += number
            continue
        mine[status] += number
        if status == "sent" and what in SENT_AS:
            mine[SENT_AS[what]] += number
    return counts

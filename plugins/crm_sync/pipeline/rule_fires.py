"""How often the profile's rules fired (issue 27), from ``rule_fire`` (one row per firing, written by
reconcile: crm_sync.pipeline.reconcile.rule_plan): per run for its report, and per rule over the
recent runs for the console's rules page. Aggregates in SQL: a run that fired a rule on 100,000
records is still one row per rule here.

A firing belongs to the run that fired it: a dry run keeps its own firings (``dry_run``) after a
real run plans the same actions again and records them once more as its own, so a dry run's report
shows what its rules would have done, and the real run's report what they did.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from crm_sync.warehouse.tables import rule_fire


def fired_in_run(conn: sa.Connection, profile: str, run_id: str) -> list[dict[str, Any]]:
    """The rules the run fired: each one's name, times fired, writes its actions made (planned or
    joined into the mapping's), and whether they were a dry run's; most fired first, then by name."""
    fired, writes = sa.func.count(), sa.func.coalesce(sa.func.sum(rule_fire.c.writes), 0)
    dry = sa.func.max(sa.case((rule_fire.c.dry_run.is_(True), 1), else_=0))
    rows = conn.execute(sa.select(rule_fire.c.rule, fired, writes, dry)
                        .where(rule_fire.c.profile == profile, rule_fire.c.run_id == run_id)
                        .group_by(rule_fire.c.rule).order_by(fired.desc(), rule_fire.c.rule))
    return [{"rule": rule, "fired": int(times), "writes": int(made), "dry_run": bool(was_dry)}
            for rule, times, made, was_dry in rows]


def fired_per_run(conn: sa.Connection, profile: str, run_ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per rule, per run of ``run_ids``: times fired, writes, dry run (a run where it did not fire is absent)."""
    if not run_ids:
        return {}
    fired, writes = sa.func.count(), sa.func.coalesce(sa.func.sum(rule_fire.c.writes), 0)
    dry = sa.func.max(sa.case((rule_fire.c.dry_run.is_(True), 1), else_=0))
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for rule, run_id, times, made, was_dry in conn.execute(
            sa.select(rule_fire.c.rule, rule_fire.c.run_id, fired, writes, dry)
            .where(rule_fire.c.profile == profile, rule_fire.c.run_id.in_(run_ids))
            .group_by(rule_fire.c.rule, rule_fire.c.run_id)):
        found.setdefault(rule, {})[run_id] = {"fired": int(times), "writes": int(made), "dry_run": bool(was_dry)}
    return found


def totals(conn: sa.Connection, profile: str) -> dict[str, dict[str, Any]]:
    """Per rule, over every run the warehouse keeps: times fired, writes, runs it fired in, the last firing."""
    writes = sa.func.coalesce(sa.func.sum(rule_fire.c.writes), 0)
    rows = conn.execute(sa.select(rule_fire.c.rule, sa.func.count(), writes,
                                  sa.func.count(sa.distinct(rule_fire.c.run_id)), sa.func.max(rule_fire.c.fired_at))
                        .where(rule_fire.c.profile == profile).group_by(rule_fire.c.rule))
    return {rule: {"fired": int(times), "writes": int(made), "runs": int(runs), "last": last}
            for rule, times, made, runs, last in rows}

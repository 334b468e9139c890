"""Report: what a run did, per side, and why, built from the warehouse alone.

`build_report` is the one builder: the report task exports it as HTML and JSON files, the
console in the Airflow UI (crm_sync.web) serves it per run, and the demo prints from
`summarize`. The data-quality section comes from the validation results validate keeps in
run_log, so a run that failed validation still shows which expectations failed and on which
rows; the run's own facts (type, data interval) are logged first by the report task, so a run
that failed at extract still has them. Where the run stands (running, failed: which task, why, its
log) comes from run_log (crm_sync.pipeline.run_state), its dry_run from every step's row; a write
counts for the run whose load sent it (``outbox.sent_run_id``), so a report says the same whenever
it is built: the console's page and JSON agree with the file the report task exported.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa

from crm_sync.console_urls import CONSOLE, run_report_url
from crm_sync.errors import NoRetryError
from crm_sync.paths import data_home
from crm_sync.pipeline import handoff
from crm_sync.pipeline.context import INTERVAL_RUN_TYPES, RunContext, log_step, utcnow
from crm_sync.pipeline.retention import cleanup, write_private
from crm_sync.pipeline.run_state import logged_dry_run, run_state, stopped_at
from crm_sync.profile import CANONICAL, Profile
from crm_sync.timezones import show
from crm_sync.timezones import zone as named_zone
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.outbox import UNSENT
from crm_sync.warehouse.tables import outbox, quarantine, raw_record, run_log, xref

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"  # package data: shipped with crm_sync


def _steps(conn: sa.Connection, profile: str, run_id: str) -> dict[tuple[str, str], Any]:
    return {(r.step, r.side): r for r in conn.execute(sa.select(run_log).where(
        run_log.c.profile == profile, run_log.c.run_id == run_id))}


DONE = ("sent", "failed")  # a load's outcomes, credited to the run whose load sent it (outbox.sent_run_id)


def credited(run_id: str) -> sa.ColumnElement[bool]:
    """The outbox rows of a run's report: those it planned, and those its load sent (or failed) for good."""
    return sa.or_(outbox.c.run_id == run_id, sa.and_(outbox.c.sent_run_id == run_id, outbox.c.status.in_(DONE)))


def seen_by(write: Any, run_id: str, dry_run: bool) -> dict[str, Any]:
    """A write as the run sees it: its status, target, last error and the run that sent it. A write it
    planned that a later run sent is, for this run, still planned and not sent (a dry run's stays
    ``dry_run``), a create with no target yet: what its report said when it was written."""
    handled = write.sent_run_id or write.run_id  # rows sent before migration 0011: the run that planned them
    if write.status in DONE and handled != run_id:
        return {"target_id": None if write.op == "create" else write.target_id,
                "status": "dry_run" if dry_run else "pending", "last_error": None, "sent_by": None}
    return {"target_id": write.target_id, "status": write.status, "last_error": write.last_error,
            "sent_by": handled if write.status in DONE else None}


def summarize(conn: sa.Connection, profile: str, run_id: str, zone: tzinfo = UTC) -> dict[str, Any]:
    """Per side: what was read (extracted = unchanged + changed + quarantined) and what was written to
    it (created, updated, deleted, failed, planned), API calls; the run's state and its failed task.
    Times are shown in ``zone`` (the profile's), with the zone named."""
    steps = _steps(conn, profile, run_id)
    dry_run = logged_dry_run(steps)
    rows = conn.execute(sa.select(outbox, xref.c.ghl_id, xref.c.app_id).outerjoin(xref, xref.c.id == outbox.c.xref_id)
                        .where(outbox.c.profile == profile, credited(run_id)).order_by(outbox.c.id)).all()
    writes = []
    for w in rows:
        seen = seen_by(w, run_id, bool(dry_run))
        writes.append({"entity": w.entity, "side": w.side, "op": w.op, "changes": _changes(w, zone),
                       "target_id": seen["target_id"], "status": seen["status"], "last_error": seen["last_error"],
                       "payload": w.payload, "decisions": w.decisions, "planned_by": w.run_id,
                       "sent_by": seen["sent_by"]})
    bad = conn.execute(sa.select(quarantine, raw_record.c.payload, raw_record.c.run_id.label("read_in"))
                       .outerjoin(raw_record, raw_record.c.id == quarantine.c.raw_id)
                       .where(quarantine.c.profile == profile, quarantine.c.run_id == run_id)
                       .order_by(quarantine.c.id)).all()
    raws = conn.execute(sa.select(raw_record.c.side, raw_record.c.source_id, raw_record.c.entity).where(
        raw_record.c.profile == profile, raw_record.c.run_id == run_id)).all()
    load = steps.get(("load", "-"))
    sides = {side: side_summary(steps, side, _tally(side, run_id, raws, writes, bad), zone) for side in ("ghl", "app")}
    return {
        "profile": profile, "run_id": run_id, "timezone": str(zone),
        "run_type": next((s.run_type for s in steps.values()), None),
        "sides": sides,
        "writes_sent": sum(w["status"] == "sent" for w in writes),
        "quarantined": len({q.raw_id for q in bad}),
        "quarantined_by_rule": dict(Counter(q.rule for q in bad).most_common()),
        "validate": steps[("validate", "-")].stats if ("validate", "-") in steps else {},
        "failed_at": stopped_at(steps),
        "budget_stop": _budget_stop(steps),
        "dead_letter": (load.stats.get("dead_letter") or []) if load else [],
        "entities": _by_entity(raws, writes, bad, {side: (steps[("extract", side)].stats.get("by_entity")
                                                          if ("extract", side) in steps else None)
                                                   for side in ("ghl", "app")}),
        "quarantine": [{"entity": q.entity, "side": q.side, "source_id": q.source_id, "rule": q.rule,
                        "detail": q.detail, "raw_id": q.raw_id, "payload": q.payload} for q in bad],
        "writes": writes,
    }


def _tally(side: str, run_id: str, raws, writes: list[dict[str, Any]], bad) -> dict[str, int]:
    """The run's rows of one side, counted: what `side_summary` needs beside run_log. The runs list
    counts the same in SQL (crm_sync.pipeline.run_list)."""
    mine = [w for w in writes if w["side"] == side]

    def sent(*ops: str) -> int:
        return sum(w["op"] in ops and w["status"] == "sent" for w in mine)

    return {
        "landed": sum(r.side == side for r in raws),
        "quarantined": len({q.raw_id for q in bad if q.side == side and q.read_in == run_id}),
        "created": sent("create"), "updated": sent("update"), "deleted": sent("delete", "archive"),
        "failed": sum(w["status"] == "failed" for w in mine),
        "planned": sum(w["status"] in UNSENT for w in mine),
    }


def side_summary(steps: dict[tuple[str, str], Any], side: str, tally: dict[str, int], zone: tzinfo = UTC
                 ) -> dict[str, Any]:
    """One side of a run. Read: every record extract read is unchanged (the same as last staged, so not
    landed), quarantined (landed, broke a rule) or changed (landed, staged): the three add up to
    ``extracted``. Written to it: created, updated, deleted, failed and planned (not sent) writes.
    API calls of extract and load. From its run_log rows and its rows counted (`_tally`)."""
    extract, load = steps.get(("extract", side)), steps.get(("load", "-"))
    extracted = extract.stats.get("extracted", tally["landed"]) if extract else tally["landed"]
    unchanged = extract.stats.get("unchanged", 0) if extract else 0
    return {
        "window": _window(extract, zone),
        "extracted": extracted,
        "quarantined": tally["quarantined"],
        "created": tally["created"],
        "updated": tally["updated"],
        "unchanged": unchanged,
        "failed": tally["failed"],
        "planned": tally["planned"],
        "api_calls": (extract.stats.get("api", {}).get("calls", 0) if extract else 0)
        + (load.stats.get("api", {}).get(side, {}).get("calls", 0) if load else 0),
        "changed": extracted - unchanged - tally["quarantined"],
        "deleted": tally["deleted"],
    }


def _changes(write, zone: tzinfo = UTC) -> list[dict[str, str]]:
    """The write as a diff: each field it sets, what the target side holds now and what it will hold."""
    held = {d["field"]: d.get(write.side, "") for d in write.decisions or []}
    kinds = CANONICAL.get(write.entity, {})

    def shown(name: str, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, list):
            return ", ".join(value)
        instant = kinds.get(name, ("",))[0] == "datetime" and isinstance(value, str) and len(value) > 10
        return show(value, zone) if instant else str(value)

    return [{"field": name, "before": "" if write.op == "create" else shown(name, held.get(name)),
             "after": shown(name, value)} for name, value in (write.payload or {}).items()]


def _by_entity(raws, writes, bad, read: dict[str, dict[str, int] | None]) -> dict[str, dict[str, int]]:
    """Per entity: records read from each side (as extract counted them; else those landed), writes
    sent to each side, rows quarantined."""
    counts: dict[str, dict[str, int]] = {}

    def extracted(entity: str, side: str) -> int:
        if read.get(side) is not None:
            return read[side].get(entity, 0)
        return sum(r.entity == entity and r.side == side for r in raws)

    counted = [entity for by_side in read.values() if by_side for entity, n in by_side.items() if n]
    for entity in dict.fromkeys([r.entity for r in raws] + [w["entity"] for w in writes] + counted):
        counts[entity] = {
            **{f"extracted_{side}": extracted(entity, side) for side in ("ghl", "app")},
            **{f"sent_to_{side}": sum(w["entity"] == entity and w["side"] == side and w["status"] == "sent"
                                      for w in writes) for side in ("ghl", "app")},
            "quarantined": sum(q.entity == entity for q in bad),
        }
    return counts


def _budget_stop(steps: dict[tuple[str, str], Any]) -> dict[str, Any] | None:
    """What waits for the next run because GHL's daily budget ran down to the reserve, if it did."""
    extract, load = steps.get(("extract", "ghl")), steps.get(("load", "-"))
    message = extract.stats.get("budget_stop") if extract else None
    writes = load.stats.get("budget_waiting", 0) if load else 0
    if not message and not writes:
        return None
    owed = handoff.of_row(extract).owed if extract else handoff.Owed()
    return {"message": message or "GHL's daily budget ran down to its reserve (ghl.daily_reserve) during the load",
            "notes_owed": len(owed.note), "tasks_owed": len(owed.task),
            "appointments_from": owed.appointment_from, "writes_waiting": writes}


def _window(extract, zone: tzinfo = UTC) -> str:
    if extract is None:
        return ""
    start = show(extract.window_start, zone, "beginning")
    end = show(extract.window_end, zone, "now")
    return f"{extract.stats.get('window_mode', '')} [{start}, {end})"


def build_report(conn: sa.Connection, profile: Profile, run_id: str) -> dict[str, Any]:
    """Everything the report page shows about one run: `summarize`, its state (running, failed: which
    task, why, its log), the run's own facts as its steps logged them, the profile's threshold when
    validate never ran, and a row for every entity the profile syncs (a run that failed early read
    nothing, which is worth seeing)."""
    summary = summarize(conn, profile.name, run_id, profile.zone)
    steps = _steps(conn, profile.name, run_id)
    summary.update(run_state(steps, profile.name, profile.dag_id, run_id))
    report_row = steps.get(("report", "-"))
    summary.update(run_facts(profile, summary, report_row.stats if report_row else None, logged_dry_run(steps)))
    summary["validate"] = {"threshold": profile.quality_threshold, **summary["validate"]}
    empty = {"extracted_ghl": 0, "extracted_app": 0, "sent_to_ghl": 0, "sent_to_app": 0, "quarantined": 0}
    summary["entities"] = {**{entity: dict(empty) for entity in profile.synced()}, **summary["entities"]}
    return summary


def run_facts(profile: Profile, summary: dict[str, Any], logged: dict[str, Any] | None,
              dry_run: bool | None = None) -> dict[str, Any]:
    """The run's own facts as the report task logged them (None: it has not run yet), and its title.
    Its dry_run is the one its steps logged (``dry_run``, from the run's conf), from its first step on."""
    facts = logged or {}
    if dry_run is None:  # steps logged before migration 0011
        dry_run = facts.get("dry_run", profile.dry_run)
    out = {"dag_id": profile.dag_id, "interval_start": facts.get("interval_start"),
           "interval_end": facts.get("interval_end"), "dry_run": dry_run,
           "generated_at": facts.get("generated_at"), "finished": logged is not None}
    return {**out, "title": run_title({**summary, **out})}


def run_title(summary: dict[str, Any]) -> str:
    """What the run covered, as users backfilled it: a scheduled or backfill run's data interval; any
    other run (manual: it reads from the watermark, whatever interval Airflow gave it) its run id."""
    start, end = summary.get("interval_start"), summary.get("interval_end")
    if summary.get("run_type") in INTERVAL_RUN_TYPES and start and end and start != end:
        where = named_zone(summary.get("timezone") or "UTC")
        return f"{show(start, where)} to {show(end, where)}"
    return summary["run_id"]


def report_path(ctx: RunContext) -> Path:
    """The export's file, named by the data interval the run covered (its run type first, so a
    scheduled run and a backfill of one interval keep their own files); manual runs by run id."""
    start, end = ctx.interval_start, ctx.interval_end
    if ctx.run_type in INTERVAL_RUN_TYPES and start and end and start != end:
        name = f"{ctx.run_type}_{start:%Y-%m-%dT%H%M}_{end:%Y-%m-%dT%H%M}"
    else:
        name = ctx.run_id
    folder = data_home() / "reports" / ctx.profile.dag_id
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.html"


def report_file(conn: sa.Connection, profile: str, run_id: str) -> str | None:
    """Where the report task exported a run's report (None before it ran)."""
    stats = conn.execute(sa.select(run_log.c.stats).where(
        run_log.c.profile == profile, run_log.c.run_id == run_id, run_log.c.step == "report")).scalar_one_or_none()
    return (stats or {}).get("report")


def environment(*extra_folders: Path) -> jinja2.Environment:
    """The report's Jinja environment (the console adds its own templates folder)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([*extra_folders, TEMPLATES]), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["when"] = _when
    env.filters["airflow_root"] = lambda base: base.rstrip("/").removesuffix("/" + CONSOLE)  # console's base -> UI's
    return env


@jinja2.pass_context
def _when(context: jinja2.runtime.Context, moment: Any, empty: str = "") -> str:
    """A moment in the page's ``zone`` (the profile's; UTC when the page names none), zone named."""
    return show(moment, context.get("zone") or UTC, empty)


def airflow_base() -> str:
    """The Airflow UI's URL (``[api] base_url``) for the exported file's links; a page in the console
    links relative to where it is served instead."""
    try:
        from airflow.sdk.configuration import conf

        return conf.get("api", "base_url", fallback=None) or "http://localhost:8080"
    except ImportError:
        return "http://localhost:8080"


def render(summary: dict[str, Any], airflow: str | None = None) -> str:
    """The exported report; its links to Airflow under ``airflow`` (default: `airflow_base`)."""
    return environment().get_template("run_report.html.j2").render(
        r=summary, zone=named_zone(summary["timezone"]),
        airflow=(airflow if airflow is not None else airflow_base()).rstrip("/"))


class RunFailed(NoRetryError):
    """An earlier task failed; the report is written all the same, then the run is marked failed."""


def report(ctx: RunContext) -> dict[str, Any]:
    """Runs after the others whatever their outcome (trigger rule all_done), so a failed run has a report too."""
    eng = engine()
    path = report_path(ctx)
    facts = {"interval_start": ctx.interval_start.isoformat() if ctx.interval_start else None,
             "interval_end": ctx.interval_end.isoformat() if ctx.interval_end else None,
             "dry_run": ctx.dry_run, "generated_at": utcnow().isoformat(timespec="seconds"), "report": str(path)}
    with eng.begin() as conn:
        log_step(conn, ctx, "report", facts)
    with eng.connect() as conn:
        summary = build_report(conn, ctx.profile, ctx.run_id)
    failed_at = summary["failed_at"]
    write_private(path, render(summary))
    write_private(path.with_suffix(".json"), json.dumps(summary, indent=2, default=str))
    stats = {**facts, "sides": summary["sides"], "writes_sent": summary["writes_sent"],
             "quarantined": summary["quarantined"], "failed_at": failed_at}
    with eng.begin() as conn:
        stats["retention"] = cleanup(conn, ctx, path.parent)
        log_step(conn, ctx, "report", stats)
    log.info("run report: %s in the Airflow UI (crm-sync), exported to %s",
             run_report_url(ctx.profile.dag_id, ctx.run_id), path.as_uri())
    if failed_at:
        raise RunFailed(f"the run stopped at {failed_at}; its report is {path}")
    return stats

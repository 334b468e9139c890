"""Report: what a run did, per side, and why, built from the warehouse alone.

`build_report` is the one builder: the report task exports it as HTML and JSON files, the
console in the Airflow UI (crm_sync.web) serves it per run, and the demo prints from
`summarize`. The data-quality section comes from the validation results validate keeps in
run_log, so a run that failed validation still shows which expectations failed and on which
rows; the run's own facts (type, data interval) are logged first by the report task, so a run
that failed at extract still has them. Where the run stands (running, failed: which task, why, its
log) comes from run_log (crm_sync.pipeline.run_state), its dry_run from every step's row; a write
counts for the run whose load sent it (``outbox.sent_run_id``), so a report says the same whenever
it is built: the console's page and JSON agree with the file the report task exported. Its counts
are SQL aggregates and the console lists one page of writes (crm_sync.pipeline.report_pages), so
the report of a 100,000-write run opens at once; the exported file lists every write.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa

from crm_sync.console_urls import CONSOLE, run_report_url
from crm_sync.errors import NoRetryError
from crm_sync.paths import data_home
from crm_sync.pipeline import handoff, people_models
from crm_sync.pipeline.context import INTERVAL_RUN_TYPES, RunContext, log_step, utcnow
from crm_sync.pipeline.report_pages import ReportQuery, by_entity, by_rule, counts, listed, tallies
from crm_sync.pipeline.retention import cleanup, write_private
from crm_sync.pipeline.rule_fires import fired_in_run
from crm_sync.pipeline.run_state import logged_dry_run, run_state, stopped_at
from crm_sync.pipeline.run_trigger import one_task, run_dag_id, run_trigger
from crm_sync.profile import Profile
from crm_sync.timezones import show
from crm_sync.timezones import zone as named_zone
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.lock import profile_lock
from crm_sync.warehouse.tables import run_log

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"  # package data: shipped with crm_sync


def _steps(conn: sa.Connection, profile: str, run_id: str) -> dict[tuple[str, str], Any]:
    return {(r.step, r.side): r for r in conn.execute(sa.select(run_log).where(
        run_log.c.profile == profile, run_log.c.run_id == run_id))}


def summarize(conn: sa.Connection, profile: str, run_id: str, zone: tzinfo = UTC,
              query: ReportQuery | None = None) -> dict[str, Any]:
    """Per side: what was read (extracted = unchanged + changed + quarantined) and what was written to
    it (created, updated, deleted, failed, planned), API calls; the run's state and its failed task.
    Times are shown in ``zone`` (the profile's), with the zone named. The counts are the database's
    (crm_sync.pipeline.report_pages); the writes and quarantined rows listed are those ``query`` asks
    for, one page (None: every one), and ``listed`` says which of how many."""
    steps = _steps(conn, profile, run_id)
    dry_run = logged_dry_run(steps)
    found = counts(conn, profile, [run_id])[run_id]
    tally = tallies(found)
    writes, bad, shown = listed(conn, profile, run_id, bool(dry_run), zone, query)
    load = steps.get(("load", "-"))
    sides = {side: side_summary(steps, side, tally[side], zone) for side in ("ghl", "app")}
    return {
        "profile": profile, "run_id": run_id, "timezone": str(zone),
        "run_type": next((s.run_type for s in steps.values()), None),
        "sides": sides,
        "writes_sent": sum(tally[side].get("sent", 0) for side in ("ghl", "app")),
        "quarantined": found.get("-", {}).get("quarantined", 0),
        "quarantined_by_rule": by_rule(conn, profile, run_id),
        "rules_fired": fired_in_run(conn, profile, run_id),
        "validate": steps[("validate", "-")].stats if ("validate", "-") in steps else {},
        "failed_at": stopped_at(steps),
        "budget_stop": _budget_stop(steps),
        "dead_letter": (load.stats.get("dead_letter") or []) if load else [],
        "entities": by_entity(conn, profile, run_id, {side: (steps[("extract", side)].stats.get("by_entity")
                                                              if ("extract", side) in steps else None)
                                                       for side in ("ghl", "app")}),
        "quarantine": bad,
        "writes": writes,
        "listed": shown,
    }


def side_summary(steps: dict[tuple[str, str], Any], side: str, tally: dict[str, int], zone: tzinfo = UTC
                 ) -> dict[str, Any]:
    """One side of a run. Read: every record extract read is unchanged (the same as last staged, so not
    landed), quarantined (landed, broke a rule) or changed (landed, staged): the three add up to
    ``extracted``. Written to it: created, updated, deleted, failed and planned (not sent) writes.
    API calls of extract and load. From its run_log rows and its rows counted (report_pages.tallies)."""
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
    if extract.stats.get("window_mode") == "named":  # the fast lane: read by id, no window, no watermark
        return "named by webhook events (no window)"
    start = show(extract.window_start, zone, "beginning")
    end = show(extract.window_end, zone, "now")
    return f"{extract.stats.get('window_mode', '')} [{start}, {end})"


def build_report(conn: sa.Connection, profile: Profile, run_id: str, query: ReportQuery | None = None
                 ) -> dict[str, Any]:
    """Everything the report page shows about one run: `summarize`, its state (running, failed: which
    task, why, its log), the run's own facts as its steps logged them, the profile's threshold when
    validate never ran, a row for every entity the profile syncs (a run that failed early read
    nothing, which is worth seeing), and what triggered the run (crm_sync.pipeline.run_trigger). Its
    writes and quarantined rows: every one, or the page ``query`` asks for (the console's)."""
    summary = summarize(conn, profile.name, run_id, profile.zone, query)
    steps = _steps(conn, profile.name, run_id)
    # links into Airflow: the run's own DAG (its fast lane's, whose one task has every step's log)
    summary.update(run_state(steps, profile.name, run_dag_id(steps, profile), run_id, one_task(steps, profile)))
    report_row = steps.get(("report", "-"))
    summary.update(run_facts(profile, summary, report_row.stats if report_row else None, logged_dry_run(steps)))
    summary["trigger"] = run_trigger(steps, profile, summary["interval_start"], summary["interval_end"])
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


def refresh_models(eng: sa.Engine, ctx: RunContext) -> dict[str, Any]:
    """The analysts' models (crm_sync.pipeline.people_models). A refresh that fails is logged and said in
    the stats, and stops nothing: retention still runs."""
    try:
        with profile_lock(eng, ctx.profile.name, "report"), eng.begin() as conn:  # they read what load wrote
            refreshed = people_models.refresh(conn, ctx)
    except Exception as error:
        log.exception("the people models could not be refreshed")
        return {"error": f"not refreshed ({type(error).__name__}): the report task's log says why"}
    log.info("people models refreshed: %s", refreshed)
    return refreshed


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
    stats["people_models"] = refresh_models(eng, ctx)
    with eng.begin() as conn:
        stats["retention"] = cleanup(conn, ctx, path.parent)
        log_step(conn, ctx, "report", stats)
    log.info("run report: %s in the Airflow UI (crm-sync), exported to %s",
             run_report_url(ctx.profile.dag_id, ctx.run_id), path.as_uri())
    if failed_at:
        raise RunFailed(f"the run stopped at {failed_at}; its report is {path}")
    return stats

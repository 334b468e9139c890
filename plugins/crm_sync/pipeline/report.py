"""Report: what a run did, per side, and why; written as HTML and JSON next to the warehouse.

The same summary feeds the run report page, the run log and the demo's closing lines. The
page's data-quality section comes from the validation results validate keeps in run_log, so
a run that failed validation still shows which expectations failed and on which rows.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa

from crm_sync.errors import NoRetryError
from crm_sync.paths import PROJECT_ROOT, data_home
from crm_sync.pipeline.context import RunContext, log_step, utcnow
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.tables import outbox, quarantine, raw_record, run_log, xref

log = logging.getLogger(__name__)
TEMPLATES = PROJECT_ROOT / "include" / "templates"
PIPELINE = ("extract", "stage", "validate", "reconcile", "load")


def _steps(conn: sa.Connection, profile: str, run_id: str) -> dict[tuple[str, str], Any]:
    return {(r.step, r.side): r for r in conn.execute(sa.select(run_log).where(
        run_log.c.profile == profile, run_log.c.run_id == run_id))}


def summarize(conn: sa.Connection, profile: str, run_id: str) -> dict[str, Any]:
    """Per side: extracted, quarantined, created, updated, unchanged, failed writes, API calls."""
    steps = _steps(conn, profile, run_id)
    writes = conn.execute(sa.select(outbox, xref.c.ghl_id, xref.c.app_id).outerjoin(xref, xref.c.id == outbox.c.xref_id)
                          .where(outbox.c.profile == profile, outbox.c.run_id == run_id)
                          .order_by(outbox.c.id)).all()
    bad = conn.execute(sa.select(quarantine).where(quarantine.c.profile == profile, quarantine.c.run_id == run_id)
                       .order_by(quarantine.c.id)).all()
    raws = conn.execute(sa.select(raw_record.c.side, raw_record.c.source_id, raw_record.c.entity).where(
        raw_record.c.profile == profile, raw_record.c.run_id == run_id)).all()
    extracted = [(r.side, r.source_id) for r in raws]
    load = steps.get(("load", "-"))
    sides = {}
    for side in ("ghl", "app"):
        extract = steps.get(("extract", side))
        touched = {w.ghl_id if side == "ghl" else w.app_id for w in writes}
        bad_ids = {q.source_id for q in bad if q.side == side}
        mine = [w for w in writes if w.side == side]
        ids = [source_id for s, source_id in extracted if s == side]
        sides[side] = {
            "window": _window(extract),
            "extracted": len(ids),
            "quarantined": len({q.raw_id for q in bad if q.side == side}),
            "created": sum(w.op == "create" and w.status == "sent" for w in mine),
            "updated": sum(w.op == "update" and w.status == "sent" for w in mine),
            "unchanged": sum(1 for i in ids if i is not None and i not in touched and i not in bad_ids),
            "failed": sum(w.status == "failed" for w in mine),
            "planned": sum(w.status in ("pending", "dry_run") for w in mine),
            "api_calls": (extract.stats["api"].get("calls", 0) if extract else 0)
            + (load.stats["api"][side].get("calls", 0) if load else 0),
        }
    return {
        "profile": profile, "run_id": run_id,
        "run_type": next((s.run_type for s in steps.values()), None),
        "sides": sides,
        "writes_sent": sum(w.status == "sent" for w in writes),
        "quarantined": len({q.raw_id for q in bad}),
        "quarantined_by_rule": dict(Counter(q.rule for q in bad).most_common()),
        "validate": steps[("validate", "-")].stats if ("validate", "-") in steps else {},
        "failed_at": _failed_at(steps),
        "dead_letter": (load.stats.get("dead_letter") or []) if load else [],
        "entities": _by_entity(raws, writes, bad),
        "quarantine": [{"entity": q.entity, "side": q.side, "source_id": q.source_id, "rule": q.rule, "detail": q.detail,
                        "raw_id": q.raw_id} for q in bad],
        "writes": [{"entity": w.entity, "side": w.side, "op": w.op, "changes": _changes(w), "target_id": w.target_id, "status": w.status,
                    "last_error": w.last_error, "payload": w.payload, "decisions": w.decisions} for w in writes],
    }


def _changes(write) -> list[dict[str, str]]:
    """The write as a diff: each field it sets, what the target side holds now and what it will hold."""
    held = {d["field"]: d.get(write.side, "") for d in write.decisions or []}
    return [{"field": name, "before": "" if write.op == "create" else held.get(name, ""),
             "after": "" if value is None else ", ".join(value) if isinstance(value, list) else str(value)}
            for name, value in (write.payload or {}).items()]


def _by_entity(raws, writes, bad) -> dict[str, dict[str, int]]:
    """Per entity: records read from each side, writes sent to each side, rows quarantined."""
    counts: dict[str, dict[str, int]] = {}
    for entity in dict.fromkeys([r.entity for r in raws] + [w.entity for w in writes]):
        counts[entity] = {
            **{f"extracted_{side}": sum(r.entity == entity and r.side == side for r in raws) for side in ("ghl", "app")},
            **{f"sent_to_{side}": sum(w.entity == entity and w.side == side and w.status == "sent" for w in writes)
               for side in ("ghl", "app")},
            "quarantined": sum(q.entity == entity for q in bad),
        }
    return counts


def _failed_at(steps: dict[tuple[str, str], Any]) -> str | None:
    """The first pipeline step with no successful run_log row: where a failed run stopped."""
    done = {step for (step, _side), row in steps.items() if row.stats.get("passed", True)}
    return next((step for step in PIPELINE if step not in done), None)


def _window(extract) -> str:
    if extract is None:
        return ""
    start = extract.window_start.isoformat() if extract.window_start else "beginning"
    end = extract.window_end.isoformat() if extract.window_end else "now"
    return f"{extract.stats.get('window_mode', '')} [{start}, {end})"


def report_path(dag_id: str, run_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    folder = data_home() / "reports" / dag_id
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{safe}.html"


def render(summary: dict[str, Any]) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template("run_report.html.j2").render(r=summary)


class RunFailed(NoRetryError):
    """An earlier task failed; the report is written all the same, then the run is marked failed."""


def report(ctx: RunContext) -> dict[str, Any]:
    """Runs after the others whatever their outcome (trigger rule all_done), so a failed run has a report too."""
    eng = engine()
    with eng.connect() as conn:
        summary = summarize(conn, ctx.profile.name, ctx.run_id)
    failed_at = summary["failed_at"]
    summary.update(generated_at=utcnow().isoformat(timespec="seconds"), dry_run=ctx.dry_run)
    path = report_path(ctx.profile.dag_id, ctx.run_id)
    path.write_text(render(summary), encoding="utf-8")
    path.with_suffix(".json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    stats = {"report": str(path), "sides": summary["sides"], "writes_sent": summary["writes_sent"],
             "quarantined": summary["quarantined"], "failed_at": failed_at}
    with eng.begin() as conn:
        log_step(conn, ctx, "report", stats)
    log.info("run report: %s (data quality: %s#data-quality)", path.as_uri(), path.as_uri())
    if failed_at:
        raise RunFailed(f"the run stopped at {failed_at}; its report is {path}")
    return stats

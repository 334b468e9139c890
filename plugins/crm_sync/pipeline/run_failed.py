"""A run's failures, told: each failed task leaves its error in run_log (``record_failure``, where the
console, which reads only the warehouse, finds it), and the DAG's ``on_failure_callback`` sends one
``run_failed`` alert per failed run, with what the run did.

It sits in the pipeline, not in ``alerts`` (which hooks use too), because its counts come from the
run's report.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseNotifier

from crm_sync.alerts import Alert, send
from crm_sync.errors import NoRetryError

log = logging.getLogger(__name__)
ERROR_CHARS = 2000  # of a failed task's error kept in run_log (the task log has it whole)
FAILED = "failed:"  # run_log step of a failure a step left before logging its own row


def task_step(task_id: str, profile: str) -> tuple[str, str]:
    """The run_log row (step, side) of a DAG task: ``extract_ghl`` and ``extract_<profile>`` are the
    extract of a side, every other task is its own step (see crm_sync.dag_factory)."""
    if task_id == "extract_ghl":
        return "extract", "ghl"
    if task_id == f"extract_{profile}":
        return "extract", "app"
    return task_id, "-"


def step_task(step: str, side: str, profile: str) -> str:
    """The DAG task of a run_log row: ``task_step`` the other way round."""
    if step == "extract":
        return "extract_ghl" if side == "ghl" else f"extract_{profile}"
    return step


def _redacted(text: str) -> str:
    """As the task log shows it: Airflow's secret masker applied (a no-op outside Airflow)."""
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:
        return text
    return str(redact(text))


def record_failure(ctx: Any, context: dict[str, Any], error: BaseException) -> None:
    """A step's task raised: keep its error and try where the report finds them, so it names the failed
    task, shows why and links its log. On the step's run_log row when the step logged one before it
    raised (its stats kept); else on a row of its own, step ``failed:<step>`` (a step's own rows are
    only ever what it logged: the next run's extract reads the last extract's handoff). A later
    success of the step (a retry, a cleared task) logs its row without error, which the report then
    believes. The report's own verdict on a run that failed earlier (``RunFailed``) is not a failure."""
    import sqlalchemy as sa  # the task's process imports it; DAG parsing need not

    from crm_sync.pipeline.context import utcnow
    from crm_sync.pipeline.report import RunFailed
    from crm_sync.warehouse.db import engine
    from crm_sync.warehouse.ops import upsert
    from crm_sync.warehouse.tables import run_log

    if isinstance(error, RunFailed):
        return
    ti = context.get("ti") or context.get("task_instance")
    task_id = getattr(ti, "task_id", None) or "unknown"
    step, side = task_step(task_id, ctx.profile.name)
    text = _redacted(f"{type(error).__name__}: {error}")[:ERROR_CHARS]
    tries, retries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    final = isinstance(error, NoRetryError) or tries is None or retries is None or tries > retries
    attempt = {"try_number": tries, "max_tries": retries, "final": final}  # not final: Airflow retries it
    key = (run_log.c.profile == ctx.profile.name, run_log.c.run_id == ctx.run_id, run_log.c.step == step,
           run_log.c.side == side)
    try:
        with engine().begin() as conn:
            logged = conn.execute(sa.select(run_log.c.stats).where(*key)).first()
            if logged is not None:
                conn.execute(sa.update(run_log).where(*key).values(
                    error=text, stats={**logged.stats, "failed_try": attempt}))
                return
            upsert(conn, run_log, [{"profile": ctx.profile.name, "run_id": ctx.run_id, "step": f"{FAILED}{step}",
                                    "side": side, "run_type": ctx.run_type, "finished_at": utcnow(),
                                    "dry_run": ctx.dry_run, "dag_id": getattr(ctx, "dag_id", None), "error": text,
                                    "stats": {"task_id": task_id, "failed_try": attempt}}],
                   keys=["profile", "run_id", "step", "side"])
    except Exception as exc:  # noqa: BLE001 - the task's own error must surface, not this one
        log.warning("the error of %s could not be kept in the warehouse (%s)", task_id, type(exc).__name__)


def run_counts(profile: str, run_id: str) -> dict[str, int] | None:
    """What the run did before it failed, from the warehouse's run summary (counts only);
    None when validate failed it: that breach sent its own alert already."""
    try:
        from crm_sync.pipeline.report import summarize  # the task processes import it; DAG parsing need not
        from crm_sync.warehouse.db import engine

        with engine().connect() as conn:
            summary = summarize(conn, profile, run_id)
    except Exception as exc:  # noqa: BLE001 - the alert goes out without counts rather than not at all
        log.warning("alert without counts: the run summary could not be read (%s)", type(exc).__name__)
        return {}
    if summary["validate"].get("passed") is False:
        return None
    sides = summary["sides"].values()
    return {"extracted": sum(s["extracted"] for s in sides), "quarantined": summary["quarantined"],
            "writes_sent": summary["writes_sent"], "writes_failed": sum(s["failed"] for s in sides)}


class RunFailedNotifier(BaseNotifier):
    """The DAG's ``on_failure_callback`` (run by Airflow's dag-processor): one alert per failed run."""

    template_fields = ()

    def __init__(self, profile: str):
        super().__init__()
        self.profile = profile

    def render_template_fields(self, context, jinja_env=None) -> None:
        """Nothing to render; and `airflow dags test` hands callbacks a SerializedDAG without a template env."""

    def notify(self, context: dict[str, Any]) -> None:
        run, dag = context.get("dag_run"), context.get("dag")
        run_id = context.get("run_id") or getattr(run, "run_id", None)
        counts = run_counts(self.profile, run_id) if run_id else {}
        if counts is None:
            log.info("run %s failed on its data-quality threshold, which was alerted already", run_id)
            return
        send(Alert("run_failed", profile=self.profile, dag_id=getattr(dag, "dag_id", None), run_id=run_id,
                   counts=counts), context)

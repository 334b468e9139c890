"""The DAG's ``on_failure_callback``: one ``run_failed`` alert per failed run, with what the run did.

It sits in the pipeline, not in ``alerts`` (which hooks use too), because its counts come from the
run's report.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseNotifier

from crm_sync.alerts import Alert, send

log = logging.getLogger(__name__)


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

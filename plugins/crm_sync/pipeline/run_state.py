"""Where a run stands, from its run_log rows alone (the console reads only the warehouse): running,
failed or done; which of its tasks are done; the task that failed, with its error and its log in the
Airflow UI; and the run's own dry_run, as each step logged it.

A step is done when it logged its row with no error (validate also when it passed). A task that
raised left its error on its step's row, or on a ``failed:<step>`` row when it had logged none
(crm_sync.pipeline.run_failed.record_failure), final or to be retried. The report task logs last:
until it has, a run with no final failure is running.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

PIPELINE = ("extract", "stage", "validate", "reconcile", "load")
FAILED = "failed:"  # a failure a step left before logging its own row (crm_sync.pipeline.run_failed)
SIDES = ("ghl", "app")


def tasks(profile: str) -> list[tuple[str, str, str]]:
    """The DAG's step tasks in order, each with its run_log row's (step, side) (see crm_sync.dag_factory)."""
    return [("extract_ghl", "extract", "ghl"), (f"extract_{profile}", "extract", "app"),
            *((step, step, "-") for step in (*PIPELINE[1:], "report"))]


def _done(row: Any) -> bool:
    return row is not None and row.error is None and row.stats.get("passed", True)


def stopped_at(steps: dict[tuple[str, str], Any]) -> str | None:
    """The first pipeline step not done (extract: on both sides): where a failed run stopped."""
    def done(step: str) -> bool:
        keys = [(step, side) for side in SIDES] if step == "extract" else [(step, "-")]
        return all(_done(steps.get(key)) for key in keys)

    return next((step for step in PIPELINE if not done(step)), None)


def logged_dry_run(steps: dict[tuple[str, str], Any]) -> bool | None:
    """The run's dry_run as its steps logged it (each from the run's conf); None: logged before 0011."""
    return next((row.dry_run for row in steps.values() if getattr(row, "dry_run", None) is not None), None)


def airflow_path(dag_id: str, run_id: str, task_id: str | None = None, try_number: int | None = None) -> str:
    """A DAG run in the Airflow UI's grid, or one of its task instances (its log), relative to the UI's
    base URL: Airflow 3's routes ``dags/:dagId/runs/:runId[/tasks/:taskId]``, as its own log_url."""
    path = f"dags/{dag_id}/runs/{quote(run_id, safe='')}"
    if task_id:
        path += f"/tasks/{task_id}" + (f"?try_number={try_number}" if try_number else "")
    return path


def run_state(steps: dict[tuple[str, str], Any], profile: str, dag_id: str, run_id: str,
              one_task: str | None = None) -> dict[str, Any]:
    """The run's state ("running", "failed" or "success"), the step it stopped at, the task that failed
    (error, try, log), tasks that failed a try and will be retried, and the tasks done, in DAG order.
    ``one_task``: the run's DAG runs every step in that one task (the fast lane): each step's failure
    is still named by its step, and its log is that task's."""
    order = tasks(profile)
    errors = []
    for task_id, step, side in order:
        row = steps.get((step, side))
        if row is not None and row.error:
            errors.append((task_id, step, row))
        elif not _done(row) and (marker := steps.get((FAILED + step, side))) is not None:
            errors.append((task_id, step, marker))

    def told(task_id: str, step: str, row: Any) -> dict[str, Any]:
        tried = row.stats.get("failed_try") or {}
        return {"task_id": task_id, "step": step, "error": row.error, "try_number": tried.get("try_number"),
                "log": airflow_path(dag_id, run_id, one_task or task_id, tried.get("try_number"))}

    def final(row: Any) -> bool:
        return (row.stats.get("failed_try") or {}).get("final", True)

    failed = next((told(*e) for e in errors if final(e[2])), None)
    finished = ("report", "-") in steps
    failed_at = failed["step"] if failed else stopped_at(steps) if finished else None
    return {"state": "failed" if failed_at else "success" if finished else "running",
            "failed_at": failed_at, "failed_task": failed,
            "retrying": [told(*e) for e in errors if not final(e[2])],
            "steps_done": [task_id for task_id, step, side in order if _done(steps.get((step, side)))],
            "airflow_run": airflow_path(dag_id, run_id),
            "task_ids": [one_task] if one_task else ["migrate_warehouse", *(t for t, _, _ in order)]}

"""Every step of a run in one task process: the fast lane's (``crm_sync.fast_dag``) and the batch DAG's
``single_task`` shape (``crm_sync.dag_factory``, ``Profile.dag_shape``).

One process runs the steps in order, then the report, whatever happened: no task start-up, no
scheduler round trip between steps, which is where a run of eight small tasks spends most of its
time (docs/capacity.md measures it). A step that raises leaves its error on its own run_log row
(``record_failure`` under the step's own task id, as if it were the steps DAG's task), the report still
runs (the steps DAG's report is ``all_done``), and the step's error fails the task. A retry reruns the
whole sequence; every step is rerunnable for its run (docs/architecture.md, invariant 4).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from crm_sync.pipeline.context import RunContext

log = logging.getLogger(__name__)

# (task id the step's failure is recorded under, module, function, arguments)
Step = tuple[str, str, str, tuple]
OnFailure = Callable[[RunContext, dict[str, Any], BaseException], None]
APP_EXTRACT = "extract_app"  # stands for extract_<profile>, the app side's task in the steps DAG

# The steps DAG's own steps, in its order (extract both sides, then the chain); the report runs last, always.
BATCH_STEPS: tuple[Step, ...] = (
    ("extract_ghl", "extract", "extract", ("ghl",)),
    (APP_EXTRACT, "extract", "extract", ("app",)),
    ("stage", "stage", "stage", ()),
    ("validate", "validate", "validate", ()),
    ("reconcile", "reconcile", "reconcile", ()),
    ("load", "load", "load", ()),
)


def _as_task(context: dict[str, Any], task_id: str) -> dict[str, Any]:
    """The Airflow context as the step's own task would have it: its failure names the step."""
    ti = context.get("ti") or context.get("task_instance")
    return {**context, "ti": SimpleNamespace(task_id=task_id, try_number=getattr(ti, "try_number", None),
                                             max_tries=getattr(ti, "max_tries", None))}


def run_steps(ctx: RunContext, steps: tuple[Step, ...], context: dict[str, Any] | None = None,
              on_failure: OnFailure | None = None, label: str = "run") -> dict[str, Any]:
    """Run ``steps`` in order, then the report; answer each step's figures, or raise the first step's error."""
    done: dict[str, Any] = {}
    seconds: dict[str, float] = {}  # where the run's time went, step by step
    failure: BaseException | None = None
    for task_id, module, function, args in steps:
        task_id = f"extract_{ctx.profile.name}" if task_id == APP_EXTRACT else task_id
        started = time.perf_counter()
        try:
            done[task_id] = getattr(import_module(f"crm_sync.pipeline.{module}"), function)(ctx, *args)
            seconds[task_id] = round(time.perf_counter() - started, 3)
        except BaseException as error:  # AirflowTaskTimeout and AirflowTaskTerminated are BaseExceptions
            if on_failure is not None:
                on_failure(ctx, _as_task(context or {}, task_id), error)
            failure = error
            break
    log.info("%s steps took %s s", label, seconds)
    try:
        started = time.perf_counter()
        done["report"] = import_module("crm_sync.pipeline.report").report(ctx)
        log.info("its report took %.3f s", time.perf_counter() - started)
    except BaseException as error:
        if failure is None:  # the report's own verdict on the failed step is not news
            if on_failure is not None:
                on_failure(ctx, _as_task(context or {}, "report"), error)
            raise
    if failure is not None:
        raise failure
    return done

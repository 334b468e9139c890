"""The fast lane: one task that takes what the pending webhook events name through every step.

Extract (``extract_named``, both sides), then the batch run's own stage, validate, reconcile and
load, then the report, in one process: no task start-up, no scheduler round trip between steps,
which is where a run of seven tasks spends most of its minute. What makes it safe beside the
batch run is what makes the batch run safe beside itself: reconcile and load take the profile's
lock, a write is sent by whoever claims its outbox row (pending -> sending), and a link with a write
still pending plans no second one. Nothing moves a watermark here (extract logs no window), so the
batch run's windows still find whatever a lost or failed event missed; the events are marked done
by load only when it finished without a transient failure, else they wait for the next run.

A step that raises leaves its error on its own run_log row (``record_failure`` under the step's name,
as if it were the batch DAG's task), the report still runs, and the step's error fails the task.
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

# (task id the step's failure is recorded under, module, function, arguments); the report runs last, always.
STEPS: tuple[tuple[str, str, str, tuple], ...] = (
    ("extract_ghl", "extract_named", "extract_named", ("ghl",)),
    ("extract_app", "extract_named", "extract_named", ("app",)),
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


def fast_lane(ctx: RunContext, context: dict[str, Any] | None = None,
              on_failure: Callable[[RunContext, dict[str, Any], BaseException], None] | None = None
              ) -> dict[str, Any]:
    """Run every step for this run's named records; answer each step's figures."""
    done: dict[str, Any] = {}
    seconds: dict[str, float] = {}  # where the run's time went, step by step (the lane's latency budget)
    failure: BaseException | None = None
    for task_id, module, function, args in STEPS:
        task_id = f"extract_{ctx.profile.name}" if task_id == "extract_app" else task_id
        started = time.perf_counter()
        try:
            done[task_id] = getattr(import_module(f"crm_sync.pipeline.{module}"), function)(ctx, *args)
            seconds[task_id] = round(time.perf_counter() - started, 3)
        except BaseException as error:  # AirflowTaskTimeout and AirflowTaskTerminated are BaseExceptions
            if on_failure is not None:
                on_failure(ctx, _as_task(context or {}, task_id), error)
            failure = error
            break
    log.info("fast lane steps took %s s", seconds)
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

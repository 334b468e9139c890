"""The fast lane: one task that takes what the pending webhook events name through every step.

Extract (``extract_named``, both sides), then the batch run's own stage, validate, reconcile and
load, then the report, in one process (``crm_sync.pipeline.one_task``, which the batch DAG's
``single_task`` shape shares). What makes it safe beside the batch run is what makes the batch run
safe beside itself: reconcile and load take the profile's lock, a write is sent by whoever claims its
outbox row (pending -> sending), and a link with a write still pending plans no second one. Nothing
moves a watermark here (extract logs no window), so the batch run's windows still find whatever a
lost or failed event missed; the events are marked done by load only when it finished without a
transient failure, else they wait for the next run.
"""

from __future__ import annotations

from typing import Any

from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.one_task import APP_EXTRACT, BATCH_STEPS, OnFailure, Step, run_steps

# The batch run's steps, with each side read by the ids the events name instead of by window.
STEPS: tuple[Step, ...] = (
    ("extract_ghl", "extract_named", "extract_named", ("ghl",)),
    (APP_EXTRACT, "extract_named", "extract_named", ("app",)),
    *BATCH_STEPS[2:],
)


def fast_lane(ctx: RunContext, context: dict[str, Any] | None = None, on_failure: OnFailure | None = None
              ) -> dict[str, Any]:
    """Run every step for this run's named records; answer each step's figures."""
    return run_steps(ctx, STEPS, context, on_failure, label="fast lane")

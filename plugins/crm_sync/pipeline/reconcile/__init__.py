"""Reconcile: decide every write and put it in the outbox (crm_sync.pipeline.reconcile.step).

One job a module: ``step`` (the DAG's entry point, ``reconcile(ctx)``), ``planner`` (outbox rows
and link updates), ``identity`` (contacts: matching and review decisions), ``children`` (tasks,
notes, appointments), ``links`` (link bookkeeping), ``deletes`` (records GHL deleted). The step
imports the parts; the parts never import the step.
"""

from crm_sync.pipeline.reconcile.step import reconcile

__all__ = ["reconcile"]

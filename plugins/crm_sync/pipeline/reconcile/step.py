"""The reconcile step: decide every write, and put it in the outbox. Nothing is sent from here.

Contacts first, then tasks, notes and appointments (they link through their contact):

1. Candidates: staged records with no identity link, or whose hash differs from the one
   the link last recorded for their side (our own echoes match it, so they drop out).
2. Identity for unlinked contacts: the other side's id a record keeps (the profile's
   ``external_id``), then normalised email, then E.164 phone, with names compared as one
   person's (nicknames, swapped first and last; crm_sync.pipeline.matching has the rules). A
   record that is unsure (several candidates, another first name, a create that would land on
   an existing record) is quarantined as ``ambiguous_match``, never guessed, and listed in the
   review queue (crm_sync.review); people's decisions on such pairs come first: ``link`` pairs
   them, ``apart`` keeps the pair from ever joining.
   Unlinked children pair up under the same linked contact by their natural key (a task's
   title, a note's body, an appointment's start) when that is unique on both sides.
3. Each linked or newly matched pair is merged field by field (crm_sync.pipeline.merge);
   each side gets a patch of just the fields it lacks. Unmatched records are created on
   the other side; a child whose contact is not linked yet waits for a later run. A record
   deleted on the app (its soft-delete marker), or a linked child missing from a complete list
   of its GHL contact's children, follows the profile's ``on_delete``. Links with writes still
   pending wait for load to finish them.
4. The profile's rules look at the run's changes (crm_sync.pipeline.reconcile.rule_plan): their
   actions join the contact's planned write or become writes of their own, each naming its rule.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext, log_step, utcnow
from crm_sync.pipeline.reconcile.children import reconcile_children
from crm_sync.pipeline.reconcile.identity import reconcile_contacts
from crm_sync.pipeline.reconcile.links import save_link_updates
from crm_sync.pipeline.reconcile.planner import Planner
from crm_sync.pipeline.reconcile.rule_plan import plan_rules
from crm_sync.warehouse import outbox
from crm_sync.warehouse.lock import profile_lock
from crm_sync.warehouse.tables import raw_record


def reconcile(ctx: RunContext) -> dict[str, Any]:
    """Plan every synced entity's writes (contacts first: children link through them), record the
    links settled without a write, queue the writes, and log the step's counts."""
    from crm_sync.warehouse.db import engine

    eng = engine()
    planners = {entity: Planner(ctx, entity) for entity in ctx.profile.synced()}
    now = utcnow()
    with profile_lock(eng, ctx.profile.name, "reconcile"), eng.begin() as conn:
        stats = reconcile_contacts(conn, ctx, planners["contact"])
        for entity, plan in planners.items():
            if entity != "contact":
                stats[f"{entity}_waiting_for_contact"] = reconcile_children(conn, ctx, plan)["waiting_for_contact"]
        if fired := plan_rules(conn, ctx, planners):
            stats["rules_fired"] = fired
        rows = [row for plan in planners.values() for row in plan.outbox]
        save_link_updates(conn, [u for plan in planners.values() for u in plan.link_updates], now)
        outbox.queue(conn, rows, ctx.dry_run)
        extracted = pd.read_sql(sa.select(raw_record.c.side, raw_record.c.entity).where(
            raw_record.c.profile == ctx.profile.name, raw_record.c.run_id == ctx.run_id), conn)
        stats = {**_stats(rows, extracted), **stats}
        log_step(conn, ctx, "reconcile", stats)
    return stats


def _stats(rows: list[dict[str, Any]], extracted: pd.DataFrame) -> dict[str, Any]:
    """Writes planned per side and op, and per entity; records extracted per side."""
    planned: dict[str, int] = {f"{side}_{op}": 0 for side in ("ghl", "app") for op in ("create", "update")}
    by_entity: dict[str, int] = {}
    for row in rows:
        key = f"{row['side']}_{row['op']}"
        planned[key] = planned.get(key, 0) + 1
        by_entity[row["entity"]] = by_entity.get(row["entity"], 0) + 1
    return {"planned": planned, "planned_by_entity": by_entity,
            "extracted_ghl": int((extracted.side == "ghl").sum()),
            "extracted_app": int((extracted.side == "app").sum())}

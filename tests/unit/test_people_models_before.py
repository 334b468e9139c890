"""outbox.before: what each write replaces on its target, as the planner saw it (the changelog's before)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.reconcile.planner import Planner
from crm_sync.profile import CANONICAL, profile_by_name


def record(source_id: str, **values) -> pd.Series:
    return pd.Series({**dict.fromkeys(CANONICAL["contact"]), "source_id": source_id, "deleted": False,
                      "content_hash": source_id, "updated_at": datetime(2026, 11, 20, tzinfo=UTC), **values})


def planner() -> Planner:
    return Planner(RunContext(profile=profile_by_name("gymdesk"), run_id="r1", run_type="manual"), "contact")


def test_an_update_keeps_the_targets_values_of_the_fields_it_sets_and_a_create_none():
    plan = planner()
    base = {"email": "pat@example.com", "first_name": "Pat", "last_name": "Lee", "company_name": "Acme",
            "lead_source": "Web"}
    plan.pair(7, record("g1", **{**base, "company_name": "Acme GHL"}), record("a1", **base), base)
    [update] = plan.outbox
    assert (update["side"], update["op"]) == ("app", "update")
    assert update["payload"] == {"company_name": "Acme GHL"} and update["before"] == {"company_name": "Acme"}

    plan = planner()
    plan.create(8, "app", record("a2", email="new@example.com", first_name="New", lead_source="Web"))
    create = next(row for row in plan.outbox if row["op"] == "create")
    assert create["before"] is None and create["payload"]["email"] == "new@example.com"


def test_a_soft_delete_keeps_what_the_record_held():
    plan = planner()
    plan.pair(9, record("g3", email="gone@example.com", tags=["vip"]),
              record("a3", email="gone@example.com", deleted=True), None)
    [archive] = plan.outbox
    assert (archive["side"], archive["op"]) == ("ghl", "archive")
    assert archive["before"] == {"tags": ["vip"]} and archive["payload"] == {"tags": ["gymdesk-archived"]}

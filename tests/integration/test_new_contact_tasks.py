"""The profile's new_contact_tasks (a new lead's first call and reminder) reach GHL and the app in the
run that brings the lead to GHL, under one link each, however often that contact's create is planned."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.extract import extract
from crm_sync.pipeline.load import load
from crm_sync.pipeline.reconcile import reconcile
from crm_sync.pipeline.stage import stage
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.tables import outbox, xref


PAST = "2026-10-01T09:00:00Z"
TEMPLATES = ["Call new lead", "Follow-up reminder"]


@pytest.fixture
def warehouse(gymdesk_warehouse, gymdesk_sim):
    gymdesk_sim.seed("members", [{"id": "mem_1", "first_name": "Lena", "last_name": "Silva", "phone": None,
                                  "email": "lena@example.com", "company": None, "lead_source": "Website form",
                                  "status": "lead", "created_at": PAST, "updated_at": PAST}])
    return gymdesk_warehouse


def run(run_id: str, dry_run: bool = False, send: bool = True) -> RunContext:
    """One run the way the DAG chains its steps (extract, stage, reconcile, then load)."""
    ctx = RunContext(profile_by_name("gymdesk"), run_id, "manual", None, None, dry_run=dry_run)
    for side in ("ghl", "app"):
        extract(ctx, side)
    stage(ctx)
    reconcile(ctx)
    if send:
        load(ctx)
    return ctx


def task_links(eng: sa.Engine) -> list[tuple[str | None, str | None]]:
    with eng.connect() as conn:
        return [(r.ghl_id, r.app_id) for r in conn.execute(sa.select(xref).where(xref.c.entity == "task"))]


def task_writes(eng: sa.Engine) -> list[tuple[str, str]]:
    with eng.connect() as conn:
        return sorted((r.side, r.status) for r in conn.execute(sa.select(outbox).where(outbox.c.entity == "task")))


def test_a_contact_create_planned_again_gets_no_second_set_of_template_tasks(warehouse, ghl_sim, gymdesk_sim):
    ghl_sim.admin.post("/faults", json={"writes": {"skip": 0, "statuses": [422]}}).raise_for_status()
    run("manual__1")  # GHL refuses the lead for good: its GHL tasks wait, Gymdesk's are created

    assert sorted((t["member_id"], t["title"]) for t in gymdesk_sim.records("tasks")) == [
        ("mem_1", title) for title in TEMPLATES]
    links = task_links(warehouse)
    assert sorted(a for _, a in links) == sorted(t["id"] for t in gymdesk_sim.records("tasks"))

    run("manual__2", send=False)  # the lead is still one-sided: its create is planned again

    with warehouse.connect() as conn:
        creates = conn.execute(sa.select(outbox.c.status).where(outbox.c.entity == "contact")).scalars().all()
    assert creates == ["failed"]  # the same create, not a new one
    assert task_links(warehouse) == links
    assert task_writes(warehouse) == [("app", "sent"), ("app", "sent"), ("ghl", "pending"), ("ghl", "pending")]


def test_a_dry_run_sends_no_template_task_and_the_next_run_sends_what_it_planned(warehouse, ghl_sim, gymdesk_sim):
    run("manual__1", dry_run=True)

    assert ghl_sim.records("contacts") == [] and ghl_sim.records("tasks") == []
    assert gymdesk_sim.records("tasks") == []
    assert task_writes(warehouse) == [("app", "dry_run")] * 2 + [("ghl", "dry_run")] * 2

    run("manual__2")

    ghl_tasks = {t["title"]: t["id"] for t in ghl_sim.records("tasks")}
    desk_tasks = {t["title"]: t["id"] for t in gymdesk_sim.records("tasks")}
    assert sorted(ghl_tasks) == sorted(desk_tasks) == TEMPLATES
    assert sorted(task_links(warehouse)) == sorted((ghl_tasks[t], desk_tasks[t]) for t in TEMPLATES)
    assert task_writes(warehouse) == [("app", "sent")] * 2 + [("ghl", "sent")] * 2

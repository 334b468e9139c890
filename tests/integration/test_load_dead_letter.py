"""One bad row never blocks the outbox: a write answered with an HTML page (200) is recorded on its
row, the other writes go out in the same load, and after MAX_ATTEMPTS the row is dead-lettered."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from crm_sync.cli import list_rows
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.extract import extract
from crm_sync.pipeline.load import MAX_ATTEMPTS, TransientLoadError, load
from crm_sync.pipeline.reconcile import reconcile
from crm_sync.pipeline.report import build_report, render
from crm_sync.pipeline.stage import stage
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.tables import outbox


PAST = "2026-10-01T09:00:00Z"


@pytest.fixture
def warehouse(gymdesk_warehouse):
    return gymdesk_warehouse


def statuses(eng: sa.Engine) -> list[tuple[str, int]]:
    with eng.connect() as conn:
        return sorted((r.status, r.attempts) for r in conn.execute(sa.select(outbox.c.status, outbox.c.attempts)))


def planned_run(gymdesk_sim) -> RunContext:
    """Three new Gymdesk members extracted, staged and reconciled: the outbox holds their writes, unsent."""
    gymdesk_sim.seed("members", [{"id": f"mem_{n}", "first_name": f"P{n}", "last_name": "Lee", "phone": None,
                                  "email": f"p{n}@example.com", "company": None, "lead_source": "Walk-in",
                                  "status": "active", "created_at": PAST, "updated_at": PAST} for n in range(3)])
    ctx = RunContext(profile_by_name("gymdesk"), "manual__1", "manual", None, None)
    for side in ("ghl", "app"):
        extract(ctx, side)
    stage(ctx)
    reconcile(ctx)
    return ctx


def test_an_html_answer_to_one_write_is_recorded_the_rest_drains_and_it_is_dead_lettered(warehouse, ghl_sim,
                                                                                          gymdesk_sim):
    ctx = planned_run(gymdesk_sim)
    planned = len(statuses(warehouse))  # 3 GHL contact creates and each new lead's 2 tasks on each side

    for attempt in range(1, MAX_ATTEMPTS + 1):
        ghl_sim.admin.post("/faults", json={"writes": {"skip": 0, "html": 1}}).raise_for_status()
        if attempt < MAX_ATTEMPTS:
            with pytest.raises(TransientLoadError):
                load(ctx)
        else:
            stats = load(ctx)
        # The others went out on the first load; the bad contact's tasks wait for it.
        assert statuses(warehouse).count(("sent", 1)) == planned - 3

    assert statuses(warehouse).count(("failed", MAX_ATTEMPTS)) == 1
    [dead] = stats["dead_letter"]
    assert dead["error"].startswith(f"dead letter after {MAX_ATTEMPTS} attempts: JSONDecodeError")
    with warehouse.connect() as conn:
        [row] = list_rows(conn, "gymdesk", "failed")
        report = build_report(conn, profile_by_name("gymdesk"), "manual__1")
        page = render({**report, "generated_at": "now", "dry_run": False})
    assert row["last_error"] == dead["error"] and row["attempts"] == MAX_ATTEMPTS
    assert "Dead letters" in page and "dead letter after 3 attempts: JSONDecodeError" in page


def test_a_runaway_app_read_while_sending_dead_letters_its_row_and_never_stops_the_lane(warehouse, ghl_sim,
                                                                                        gymdesk_sim):
    """PagingRunaway is a NoRetryError but the row's own failure (a retried app child looks for its earlier
    attempt's record through a list that never ends): recorded on the row, dead-lettered after MAX_ATTEMPTS,
    never handed back unattempted, where every later run would stop at it forever."""
    ctx = planned_run(gymdesk_sim)
    children = (outbox.c.side == "app") & (outbox.c.entity != "contact")
    with warehouse.begin() as conn:  # an earlier attempt of each app child: the retry looks for its record
        assert conn.execute(sa.update(outbox).where(children).values(attempts=1)).rowcount >= 1
    gymdesk_sim.admin.post("/faults", json={"endless_pages": True}).raise_for_status()

    for _ in range(MAX_ATTEMPTS - 2):
        with pytest.raises(TransientLoadError):
            load(ctx)
    stats = load(ctx)
    with warehouse.connect() as conn:
        kept = conn.execute(sa.select(outbox.c.status, outbox.c.attempts, outbox.c.last_error).where(children)).all()
    dead = [(attempts, error) for status, attempts, error in kept if status != "sent"]  # sent: found at once
    assert dead and all(attempts == MAX_ATTEMPTS and "PagingRunaway" in error for attempts, error in dead)
    assert {status for status, _, _ in kept} <= {"sent", "failed"}  # none left pending to stop the next run
    assert len(stats["dead_letter"]) == len(dead)

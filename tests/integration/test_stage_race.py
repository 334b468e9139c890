"""A batch run that read a record before the fast lane synced a newer version never stages its older
read over it: reconcile would see a change nobody made and write the old value back (a revert, and
a second write for one change). The steps run in this process against the GHL and Gymdesk simulators,
interleaved as the two lanes interleave in Airflow: the batch's extract, the fast lane's whole sync,
then the batch's stage, reconcile and load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.extract import extract
from crm_sync.pipeline.load import load
from crm_sync.pipeline.reconcile import reconcile
from crm_sync.pipeline.stage import stage
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.tables import outbox, run_log

from harness.demo_data import LOCATION_ID

pytestmark = [pytest.mark.integration]
GHL_ID, EMAIL = "ghlRace0000000000001", "race@example.com"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def contact(company: str, updated: datetime) -> dict:
    return {"id": GHL_ID, "locationId": LOCATION_ID, "firstName": "Rae", "lastName": "Race", "email": EMAIL,
            "phone": None, "companyName": company, "tags": [], "dateAdded": iso(updated - timedelta(days=30)),
            "dateUpdated": iso(updated)}


def ctx(run_id: str) -> RunContext:
    return RunContext(profile_by_name("gymdesk"), run_id, "manual", None, None)


def test_a_batch_read_older_than_the_fast_lanes_sync_is_not_staged_and_writes_nothing(gymdesk_warehouse, ghl_sim,
                                                                                       gymdesk_sim):
    now = datetime.now(UTC)
    ghl_sim.seed("contacts", [contact("Acme", now - timedelta(hours=1))])
    first = ctx("manual__1")
    for side in ("ghl", "app"):
        extract(first, side)
    for step in (stage, reconcile, load):
        step(first)
    member = next(m for m in gymdesk_sim.records("members") if m["email"] == EMAIL)
    assert member["company"] == "Acme"

    ghl_sim.seed("contacts", [contact("Bolt", datetime.now(UTC))])  # edited now: GHL stamps real times
    batch = ctx("manual__2")
    for side in ("ghl", "app"):  # the batch reads "Bolt", and goes on to its stage task later
        extract(batch, side)

    ghl_sim.seed("contacts", [contact("Crest", datetime.now(UTC))])
    fast = ctx("manual__3")  # meanwhile the fast lane syncs the newer "Crest" end to end
    for side in ("ghl", "app"):
        extract(fast, side)
    for step in (stage, reconcile, load):
        step(fast)
    assert next(m for m in gymdesk_sim.records("members") if m["email"] == EMAIL)["company"] == "Crest"

    for step in (stage, reconcile, load):  # the batch's older read reaches stage now
        step(batch)
    assert next(m for m in gymdesk_sim.records("members") if m["email"] == EMAIL)["company"] == "Crest"
    with gymdesk_warehouse.connect() as conn:
        stats = conn.execute(sa.select(run_log.c.stats).where(run_log.c.run_id == "manual__2",
                                                              run_log.c.step == "stage")).scalar_one()
        assert stats["older_than_staged"] == 1
        batch_writes = conn.execute(sa.select(sa.func.count()).select_from(outbox).where(
            outbox.c.run_id == "manual__2")).scalar_one()
    assert batch_writes == 0

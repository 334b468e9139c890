""""Link these two" as the console shows it: the page says field by field what each side will hold,
the run after the link writes exactly that, and a link never erases a value nobody replaced (the
demo's family contact "Family Account" linked with member "Parent Family" once took the member's name).
The pipeline's steps run in this process against the GHL and Gymdesk simulators."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from crm_sync import review
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.extract import extract
from crm_sync.pipeline.load import load
from crm_sync.pipeline.reconcile import reconcile
from crm_sync.pipeline.stage import stage
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.tables import staging_contact
from crm_sync.web.link_preview import link_previews

from harness.demo_data import LOCATION_ID

pytestmark = [pytest.mark.integration]
FAMILY, PAST, LATER = "the.family@example.com", "2026-10-01T09:00:00Z", "2026-10-02T09:00:00Z"
GHL_ID = "ghlFamily00000000001"


def run(run_id: str, steps: str = "all") -> None:
    ctx = RunContext(profile_by_name("gymdesk"), run_id, "manual", None, None)
    for side in ("ghl", "app"):
        extract(ctx, side)
    stage(ctx)
    if steps == "all":
        reconcile(ctx)
        load(ctx)


def staged(engine, side: str, source_id: str) -> dict:
    fields = list(profile_by_name("gymdesk").fields("contact"))
    with engine.connect() as conn:
        row = conn.execute(sa.select(staging_contact).where(staging_contact.c.side == side,
                                                            staging_contact.c.source_id == source_id)).one()
    return {name: row._mapping[name] for name in fields}


@pytest.mark.parametrize("ghl_updated", [PAST, LATER], ids=["updated at one moment", "GHL updated later"])
def test_the_preview_is_what_the_link_writes_and_a_link_erases_no_value(gymdesk_warehouse, ghl_sim, gymdesk_sim,
                                                                        ghl_updated):
    ghl_sim.seed("contacts", [{"id": GHL_ID, "locationId": LOCATION_ID, "firstName": "Family", "lastName": "Account",
                               "email": FAMILY, "phone": None, "tags": [], "dateAdded": PAST,
                               "dateUpdated": ghl_updated}])
    gymdesk_sim.seed("members", [{"id": f"mem_95{n}", "first_name": name, "last_name": "Family", "email": FAMILY,
                                  "phone": None, "company": None, "lead_source": "Walk-in", "status": "active",
                                  "created_at": PAST, "updated_at": PAST} for n, name in ((1, "Parent"), (2, "Teen"))])
    run("manual__1")
    profile = profile_by_name("gymdesk")
    with gymdesk_warehouse.begin() as conn:
        pairs = [(p["ghl_id"], p["app_id"]) for item in review.pending(conn, profile) for p in item["pairs"]]
        assert pairs == [(GHL_ID, "mem_951"), (GHL_ID, "mem_952")]
        preview = {row["field"]: row for row in link_previews(conn, profile, pairs)[(GHL_ID, "mem_951")]}
        review.decide(conn, profile, GHL_ID, "mem_951", "link", "ops")

    first_name = preview["first_name"]  # whichever record is newer, each keeps its own name: nothing erased
    assert (first_name["ghl"], first_name["app"]) == ("Family", "Parent")
    assert (first_name["ghl_after"], first_name["app_after"]) == ("Family", "Parent")
    assert first_name["why"] == "linked by review: each side keeps its own (the next change settles it)"
    lead_source = preview["lead_source"]
    assert (lead_source["ghl"], lead_source["ghl_after"], lead_source["why"]) == (None, "Walk-in", "keep non-empty")

    run("manual__2")  # the link: merged and written both ways
    run("manual__3", steps="read")  # what each side holds now, read back
    after = {"ghl": staged(gymdesk_warehouse, "ghl", GHL_ID), "app": staged(gymdesk_warehouse, "app", "mem_951")}
    for name, row in preview.items():
        for side in ("ghl", "app"):
            if row["held"][side]:
                assert after[side][name] == row[f"{side}_after"], (side, name, row)
    for side in ("ghl", "app"):  # no value either side held is gone
        before = {name: row[side] for name, row in preview.items() if row["held"][side]}
        assert not [name for name, value in before.items() if value is not None and after[side][name] is None]
    with gymdesk_warehouse.connect() as conn:
        assert review.pending(conn, profile) == []  # the other member's pair: its GHL record is linked now

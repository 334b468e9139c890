"""A create must never land on another person. GHL's upsert matches an existing contact by email
or phone, and an app create is looked up by email first: a record sharing such a key with a record
already linked to someone else, or with another record about to be created, waits for review
(ambiguous, in quarantine with the record it would land on) instead of overwriting that person."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.extract import extract
from crm_sync.pipeline.load import load
from crm_sync.pipeline.reconcile import reconcile
from crm_sync.pipeline.stage import stage
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.tables import outbox, quarantine

from harness.demo_data import LOCATION_ID

PAST = "2026-10-01T09:00:00Z"


def member(member_id: str, first: str, email: str, updated: str = PAST) -> dict:
    return {"id": member_id, "first_name": first, "last_name": "Gym", "phone": None, "email": email,
            "company": None, "lead_source": None, "status": "active", "created_at": PAST, "updated_at": updated}


@pytest.fixture
def warehouse(gymdesk_warehouse):
    return gymdesk_warehouse


def run(run_id: str) -> None:
    ctx = RunContext(profile_by_name("gymdesk"), run_id, "manual", None, None)
    for side in ("ghl", "app"):
        extract(ctx, side)
    stage(ctx)
    reconcile(ctx)
    load(ctx)


def test_a_new_member_sharing_a_linked_contacts_email_or_another_new_members_waits_for_review(
        warehouse, ghl_sim, gymdesk_sim):
    ghl_sim.seed("contacts", [{"id": "ghlAnn0000000000001", "locationId": LOCATION_ID, "firstName": "Ann",
                               "lastName": "Gym", "email": "ann@example.com", "dateAdded": PAST, "dateUpdated": PAST}])
    gymdesk_sim.seed("members", [member("mem_1", "Ann", "ann@example.com")])
    run("manual__1")  # Ann is linked
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    gymdesk_sim.seed("members", [member("mem_2", "Bob", "ann@example.com", now),  # a second member on Ann's email
                                 member("mem_3", "Cy", "twins@example.com", now),
                                 member("mem_4", "Di", "twins@example.com", now), member("mem_5", "Eve", "eve@example.com", now)])

    run("manual__2")

    contacts = {c["email"]: c for c in ghl_sim.records("contacts")}
    assert contacts["ann@example.com"]["firstName"] == "Ann"  # not overwritten by Bob
    assert sorted(contacts) == ["ann@example.com", "eve@example.com"]  # only Eve had no clash
    with warehouse.connect() as conn:
        held = {r.source_id: r.detail for r in conn.execute(sa.select(quarantine).where(
            quarantine.c.run_id == "manual__2", quarantine.c.rule == "ambiguous_match"))}
        unsent = conn.execute(sa.select(outbox.c.id).where(outbox.c.status != "sent")).all()
    assert sorted(held) == ["mem_2", "mem_3", "mem_4"] and not unsent
    assert "ghl:ghlAnn0000000000001 by email, already linked to another record" in held["mem_2"]
    assert "app:mem_4 by email" in held["mem_3"] and "app:mem_3 by email" in held["mem_4"]


def contact(contact_id: str, first: str, last: str, email: str, phone: str, updated: str = PAST) -> dict:
    return {"id": contact_id, "locationId": LOCATION_ID, "firstName": first, "lastName": last, "email": email,
            "phone": phone, "dateAdded": PAST, "dateUpdated": updated}


def test_gHLs_upsert_never_lands_a_create_on_an_existing_contact(warehouse, ghl_sim, gymdesk_sim):
    """A typo in a member's email with the same phone and name is the same person: linked, not created.
    A member with another email and name on a contact's phone is another person, and GHL's upsert
    would land on that contact by phone: the member waits for review."""
    ghl_sim.seed("contacts", [contact("ghlJordan0000000001", "Jordan", "Reyes", "jordan@gmail.com", "+14155550101"),
                              contact("ghlAnnSmith00000001", "Ann", "Smith", "ann@example.com", "+14155550102")])
    gymdesk_sim.seed("members", [
        {**member("mem_7", "Jordan", "jordan@gmial.com"), "last_name": "Reyes", "phone": "(415) 555-0101"},
        {**member("mem_8", "Tom", "tom@example.com"), "last_name": "Smith", "phone": "415.555.0102"}])

    run("manual__1")

    contacts = {c["id"]: c for c in ghl_sim.records("contacts")}
    assert sorted(contacts) == ["ghlAnnSmith00000001", "ghlJordan0000000001"]  # nothing upserted onto them
    assert (contacts["ghlAnnSmith00000001"]["firstName"], contacts["ghlAnnSmith00000001"]["email"]) == (
        "Ann", "ann@example.com")
    members = {m["id"]: m for m in gymdesk_sim.records("members")}
    jordans = [m for m in members.values() if m["first_name"] == "Jordan"]
    assert [m["id"] for m in jordans] == ["mem_7"]  # linked to mem_7 (its email merged), not created again
    assert [m["email"] for m in members.values() if m["first_name"] == "Ann"] == ["ann@example.com"]
    with warehouse.connect() as conn:
        held = {r.source_id: r.detail for r in conn.execute(sa.select(quarantine).where(
            quarantine.c.rule == "ambiguous_match"))}
        sent = conn.execute(sa.select(outbox.c.side, outbox.c.op, outbox.c.target_id)).all()
    assert sorted(held) == ["mem_8"]
    assert "ghl:ghlAnnSmith00000001 by phone: a create in ghl would land on it" in held["mem_8"]
    assert not [row for row in sent if row.side == "ghl" and row.op == "create"]


def test_an_apps_lookup_by_email_never_lands_a_create_on_a_linked_member(warehouse, ghl_sim, gymdesk_sim):
    ghl_sim.seed("contacts", [contact("ghlCy00000000000001", "Cy", "Gym", "cy@example.com", "+14155550103")])
    gymdesk_sim.seed("members", [member("mem_9", "Cy", "cy@example.com")])
    run("manual__1")  # Cy is linked
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ghl_sim.seed("contacts", [contact("ghlDee0000000000001", "Dee", "Gym", "cy@example.com", "+14155550104", now)])

    run("manual__2")

    members = gymdesk_sim.records("members")
    assert [(m["id"], m["first_name"]) for m in members] == [("mem_9", "Cy")]  # not overwritten by Dee
    with warehouse.connect() as conn:
        held = {r.source_id: r.detail for r in conn.execute(sa.select(quarantine).where(
            quarantine.c.run_id == "manual__2", quarantine.c.rule == "ambiguous_match"))}
    assert "app:mem_9 by email, already linked to another record" in held["ghlDee0000000000001"]


def test_a_ghl_create_never_lands_on_an_unlinked_member_matching_judged_another_person(warehouse, ghl_sim,
                                                                                        gymdesk_sim):
    """Louise and Louis Martin on one family email are two people (not a nickname): the member is
    unlinked, and Gymdesk looks a create up by email, so Louise would overwrite Louis. Both wait for
    review; neither is created on the other side."""
    ghl_sim.seed("contacts", [contact("ghlLouise0000000001", "Louise", "Martin", "fam.martin@example.com",
                                      "+14155550105")])
    gymdesk_sim.seed("members", [{**member("mem_10", "Louis", "fam.martin@example.com"), "last_name": "Martin"}])

    run("manual__1")

    assert [(m["id"], m["first_name"]) for m in gymdesk_sim.records("members")] == [("mem_10", "Louis")]
    assert [c["firstName"] for c in ghl_sim.records("contacts")] == ["Louise"]
    with warehouse.connect() as conn:
        held = {r.source_id: r.detail for r in conn.execute(sa.select(quarantine).where(
            quarantine.c.rule == "ambiguous_match"))}
        creates = conn.execute(sa.select(outbox.c.id).where(outbox.c.op == "create")).all()
    assert "app:mem_10 by email, another first name" in held["ghlLouise0000000001"]
    assert "ghl:ghlLouise0000000001 by email" in held["mem_10"] and not creates


def test_a_household_line_stays_shared_after_one_of_its_people_was_linked(warehouse, ghl_sim, gymdesk_sim):
    """Mary Smith is linked in a first run. John Smith (dad@) in GHL and John Smith (son@) in Gymdesk
    share her home line: two records of each side hold it, so it does not join them across emails."""
    ghl_sim.seed("contacts", [contact("ghlMary000000000001", "Mary", "Smith", "mary@example.com", "+14155550106")])
    gymdesk_sim.seed("members", [{**member("mem_11", "Mary", "mary@example.com"), "last_name": "Smith",
                                  "phone": "(415) 555-0106"}])
    run("manual__1")  # Mary is linked
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ghl_sim.seed("contacts", [contact("ghlJohn000000000001", "John", "Smith", "dad@example.com", "+14155550106",
                                      now)])
    gymdesk_sim.seed("members", [{**member("mem_12", "John", "son@example.com", now), "last_name": "Smith",
                                  "phone": "415.555.0106"}])

    run("manual__2")

    with warehouse.connect() as conn:
        held = {r.source_id: r.detail for r in conn.execute(sa.select(quarantine).where(
            quarantine.c.run_id == "manual__2", quarantine.c.rule == "ambiguous_match"))}
    assert "app:mem_12 by phone, email differs, shared household contact" in held["ghlJohn000000000001"]
    assert "ghl:ghlJohn000000000001 by phone, email differs, shared household contact" in held["mem_12"]
    assert [m["email"] for m in gymdesk_sim.records("members") if m["id"] == "mem_12"] == ["son@example.com"]

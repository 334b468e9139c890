"""A profile's rules run inside reconcile on the run's changes (issue 27): each trigger fires once,
its actions reach the simulators as ordinary outbox rows naming the rule, a dry run shows them
without sending, and a rerun (the rule's own writes read back) writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.extract import extract
from crm_sync.pipeline.load import load
from crm_sync.pipeline.reconcile import reconcile
from crm_sync.pipeline.stage import stage
from crm_sync.paths import PROJECT_ROOT
from crm_sync.profile import load_profile
from crm_sync.warehouse.tables import outbox, rule_fire

from harness.demo_data import LOCATION_ID

RULES = """
rules:
  - name: web_leads_to_trial
    when: {new_contact: ghl}
    if: {all: [{field: lead_source, in: [Website, Facebook]}, {tag: staff, absent: true}]}
    then:
      - set: {side: app, field: segment, value: trial}
      - create_task: {side: ghl, title: "Call {first_name}", body: "Lead from {lead_source}",
                      due: {days: 1, at: "09:00"}}
  - name: vip_note
    when: {tag_added: vip, side: ghl}
    then:
      - set: {side: app, field: segment, value: vip}
      - create_note: {side: app, body: "{first_name} is a VIP now ({rule})"}
  - name: no_show_follow_up
    when: {appointment_status: noshow}
    then:
      - create_task: {side: app, title: "Follow up {contact.first_name} after a missed class"}
  - name: first_call_done
    when: {task_completed: true, side: app}
    if: {field: title, contains: call}
    then:
      - add_tag: {side: ghl, tag: called}
"""
EARLY = "2026-10-01T09:00:00Z"


def stamp(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def rules_profile(folder, rules: str = RULES):
    """The built-in gymdesk profile with GHL's tags mapped (the app holds none) and ``rules``."""
    text = (PROJECT_ROOT / "include/profiles/gymdesk.yaml").read_text()
    text = text.replace("      lead_source: {app: lead_source, fallback: Gymdesk}\n",
                        "      lead_source: {app: lead_source, fallback: Gymdesk}\n      tags: {app: null}\n")
    path = folder / "gymdesk.yaml"
    path.write_text(text + rules)
    return load_profile(path)


@pytest.fixture
def profile(tmp_path):
    return rules_profile(tmp_path)


def run(profile, run_id: str, dry_run: bool = False) -> dict:
    """One run the way the DAG chains its steps; returns reconcile's counts."""
    ctx = RunContext(profile, run_id, "manual", None, None, dry_run=dry_run)
    for side in ("ghl", "app"):
        extract(ctx, side)
    stage(ctx)
    stats = reconcile(ctx)
    load(ctx)
    return stats


def rows(eng, run_id: str) -> list[tuple]:
    with eng.connect() as conn:
        return sorted((r.entity, r.side, r.op, r.rule or "", r.status) for r in conn.execute(
            sa.select(outbox).where(outbox.c.run_id == run_id)))


def ghl_contact(email: str, first: str, source: str, tags: list[str], updated: str) -> dict:
    return {"id": f"c_{first.lower()}", "locationId": LOCATION_ID, "email": email, "firstName": first,
            "lastName": "Test", "source": source, "tags": tags, "dateAdded": EARLY, "dateUpdated": updated}


def test_each_trigger_fires_once_and_its_writes_name_the_rule(gymdesk_warehouse, profile, ghl_sim, gymdesk_sim):
    eng = gymdesk_warehouse
    web = ghl_contact("ana@example.com", "Ana", "Website", [], EARLY)
    staff = ghl_contact("bo@example.com", "Bo", "Website", ["staff"], EARLY)
    walk_in = ghl_contact("cy@example.com", "Cy", "Walk-in", [], EARLY)
    ghl_sim.seed("contacts", [web, staff, walk_in])

    first = run(profile, "manual__1")

    assert first["rules_fired"] == {"web_leads_to_trial": 1}
    members = {m["email"]: m for m in gymdesk_sim.records("members")}
    assert members["ana@example.com"].get("segment") == "trial"
    assert "segment" not in members["bo@example.com"] and "segment" not in members["cy@example.com"]
    tasks = [t for t in ghl_sim.records("tasks")]
    assert [(t["contactId"], t["title"], t["body"]) for t in tasks] == [("c_ana", "Call Ana", "Lead from Website")]
    # due the day after the sync first saw her (not after her last edit, weeks ago), at 09:00 (UTC profile)
    assert tasks[0]["dueDate"].startswith((datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT09:00:00"))
    assert ("contact", "app", "create", "web_leads_to_trial", "sent") in rows(eng, "manual__1")
    assert ("task", "ghl", "create", "web_leads_to_trial", "sent") in rows(eng, "manual__1")
    # tasks sync both ways: the rule's GHL task reaches Gymdesk in the same run, under the same link
    assert [(t["member_id"], t["title"]) for t in gymdesk_sim.records("tasks")] == [
        (members["ana@example.com"]["id"], "Call Ana")]

    assert "rules_fired" not in run(profile, "manual__2")  # the rule's own writes read back: nothing fires
    assert rows(eng, "manual__2") == []

    # A tag added in GHL: the app gets the tier and a note; the member's task completed: GHL gets a tag.
    ghl_sim.seed("contacts", [{**web, "tags": ["vip"], "dateUpdated": stamp(0)}])
    member_id = members["ana@example.com"]["id"]
    gymdesk_sim.seed("tasks", [{"id": "t_app_1", "member_id": member_id, "title": "First call", "status": "open",
                                "description": None, "due_at": None, "assignee": None, "created_at": EARLY,
                                "updated_at": stamp(0)}])
    run(profile, "manual__3")
    gymdesk_sim.seed("tasks", [{"id": "t_app_1", "member_id": member_id, "title": "First call", "status": "done",
                                "description": None, "due_at": None, "assignee": None, "created_at": EARLY,
                                "updated_at": stamp(1)}])
    fourth = run(profile, "manual__4")

    member = next(m for m in gymdesk_sim.records("members") if m["id"] == member_id)
    assert member.get("segment") == "vip"
    assert [n["content"] for n in gymdesk_sim.records("notes")] == ["Ana is a VIP now (vip_note)"]
    assert fourth["rules_fired"] == {"first_call_done": 1}
    assert sorted(next(c for c in ghl_sim.records("contacts") if c["id"] == "c_ana")["tags"]) == ["called", "vip"]

    assert "rules_fired" not in run(profile, "manual__5")
    assert rows(eng, "manual__5") == []
    with eng.connect() as conn:
        fired = sorted((r.rule, r.run_id, r.writes) for r in conn.execute(sa.select(rule_fire)))
    assert fired == [("first_call_done", "manual__4", 1), ("vip_note", "manual__3", 2),
                     ("web_leads_to_trial", "manual__1", 3)]


def test_a_no_show_gets_a_follow_up_task_and_a_dry_run_only_shows_it(gymdesk_warehouse, profile, ghl_sim,
                                                                       gymdesk_sim):
    eng = gymdesk_warehouse
    ghl_sim.seed("contacts", [ghl_contact("dee@example.com", "Dee", "Referral", [], EARLY)])
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    booking = {"locationId": LOCATION_ID, "contactId": "c_dee", "calendarId": "cal1", "title": "Intro class",
               "appointmentStatus": "confirmed", "startTime": start.isoformat().replace("+00:00", "Z"),
               "endTime": (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z")}
    appointment = ghl_sim.admin.post("/appointments", json=booking).json()
    run(profile, "manual__1")
    assert run(profile, "manual__2").get("rules_fired") is None

    ghl_sim.admin.post("/appointments", json={**appointment, "appointmentStatus": "noshow"}).raise_for_status()
    dry = run(profile, "manual__3", dry_run=True)

    assert dry["rules_fired"] == {"no_show_follow_up": 1}
    assert ("task", "app", "create", "no_show_follow_up", "dry_run") in rows(eng, "manual__3")
    assert [t["title"] for t in gymdesk_sim.records("tasks")] == []

    real = run(profile, "manual__4")

    assert real["rules_fired"] == {"no_show_follow_up": 1}
    assert [t["title"] for t in gymdesk_sim.records("tasks")] == ["Follow up Dee after a missed class"]
    with eng.connect() as conn:
        fired = [(r.rule, r.run_id, r.dry_run) for r in conn.execute(sa.select(rule_fire))]
    assert sorted(fired) == [("no_show_follow_up", "manual__3", True), ("no_show_follow_up", "manual__4", False)]
    assert run(profile, "manual__5").get("rules_fired") is None
    assert [t["title"] for t in gymdesk_sim.records("tasks")] == ["Follow up Dee after a missed class"]


def test_a_dry_run_does_not_settle_what_set_a_rule_off(gymdesk_warehouse, profile, ghl_sim, gymdesk_sim):
    """The tag a rule fires on is GHL's alone (no field mapping write): the dry run must leave the
    change unsettled, so the real run fires the rule again and sends what the dry run showed."""
    eng = gymdesk_warehouse
    eve = ghl_contact("eve@example.com", "Eve", "Referral", [], EARLY)
    ghl_sim.seed("contacts", [eve])
    run(profile, "manual__1")
    ghl_sim.seed("contacts", [{**eve, "tags": ["vip"], "dateUpdated": stamp(0)}])

    assert run(profile, "manual__2", dry_run=True)["rules_fired"] == {"vip_note": 1}
    assert gymdesk_sim.records("notes") == []

    assert run(profile, "manual__3")["rules_fired"] == {"vip_note": 1}
    assert [n["content"] for n in gymdesk_sim.records("notes")] == ["Eve is a VIP now (vip_note)"]
    assert next(m for m in gymdesk_sim.records("members") if m["email"] == "eve@example.com")["segment"] == "vip"
    assert sorted((e, s, st) for e, s, _, rule, st in rows(eng, "manual__2") if rule == "vip_note") == [
        ("contact", "app", "sent"), ("note", "app", "sent")]
    assert "rules_fired" not in run(profile, "manual__4")


def test_a_rule_disabled_after_a_dry_run_sends_nothing_of_what_the_dry_run_showed(gymdesk_warehouse, tmp_path,
                                                                                   ghl_sim, gymdesk_sim):
    """The rule's segment rode on the mapping's member create: that write is keyed with what the rule
    added, so the real run's plain create supersedes the dry run's row instead of sending its segment."""
    ghl_sim.seed("contacts", [ghl_contact("ana@example.com", "Ana", "Website", [], EARLY)])
    for folder in ("on", "off"):
        (tmp_path / folder).mkdir()
    dry = run(rules_profile(tmp_path / "on"), "manual__1", dry_run=True)
    assert dry["rules_fired"] == {"web_leads_to_trial": 1}

    real = run(rules_profile(tmp_path / "off", RULES.replace("  - name: web_leads_to_trial\n",
                                                             "  - name: web_leads_to_trial\n    enabled: false\n")),
               "manual__2")

    assert "rules_fired" not in real
    [member] = gymdesk_sim.records("members")
    assert member["email"] == "ana@example.com" and "segment" not in member
    assert ghl_sim.records("tasks") == [] and gymdesk_sim.records("tasks") == []
    with gymdesk_warehouse.connect() as conn:
        statuses = sorted((r.rule or "", r.status) for r in conn.execute(
            sa.select(outbox).where(outbox.c.entity == "contact")))
    assert statuses == [("", "sent"), ("web_leads_to_trial", "superseded")]

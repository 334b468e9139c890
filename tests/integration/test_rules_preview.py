"""A rule's preview and the run report's rule attribution (issue 27), against the simulators and a real
SQLite warehouse, runs chained as the DAG chains its steps (tests/integration/test_rules_engine.py's
way): the preview lists the current records a rule would act on as if its trigger happened now,
with each action rendered (the set value, the task's title and due time, the tag), reading canonical
values, a side's raw payload and a task's contact; it writes nothing, anywhere. A run's report names
the rule of each write and counts each rule's firings, a dry run's too."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from crm_sync.pipeline.report import build_report, render
from crm_sync.pipeline.report_pages import listed
from crm_sync.pipeline.rule_fires import fired_in_run
from crm_sync.pipeline.rules_preview import preview, rule_named
from crm_sync.warehouse.tables import outbox, rule_fire, staging_contact, staging_record, xref
from crm_sync.web.datamodels import RunReport

from tests.integration.test_rules_engine import EARLY, RULES, ghl_contact, rules_profile, run, stamp

MORE_RULES = """
  - name: walk_ins_tagged
    when: {field_changed: lead_source, side: ghl}
    if: {field: "ghl:source", equals: Walk-in}
    then:
      - add_tag: {side: ghl, tag: walkin}
  - name: anas_calls
    when: {task_completed: true, side: app}
    if: {all: [{field: title, contains: call}, {field: contact.first_name, equals: Ana}]}
    then:
      - add_tag: {side: ghl, tag: called}
"""
NOW = datetime(2026, 12, 4, 15, 30, tzinfo=UTC)


@pytest.fixture
def profile(tmp_path):
    return rules_profile(tmp_path, RULES + MORE_RULES)


def held(eng) -> dict[str, list]:
    """Every row of the tables a run writes and a preview must not."""
    with eng.connect() as conn:
        return {table.name: sorted(map(tuple, conn.execute(sa.select(table))), key=repr)
                for table in (outbox, rule_fire, xref, staging_contact, staging_record)}


def shown(found: dict) -> list[tuple]:
    return [(r["side"], r["source_id"], r["name"], [(a["text"], a["target"], a["skipped"]) for a in r["actions"]])
            for r in found["records"]]


@pytest.fixture
def synced(gymdesk_warehouse, profile, ghl_sim, gymdesk_sim):
    """Ana (a web lead), Bo (a web lead but staff) and Cy (a walk-in) in GHL, synced to Gymdesk by one
    run; Ana's member has two tasks, a first call and a class booking, synced back."""
    ghl_sim.seed("contacts", [ghl_contact("ana@example.com", "Ana", "Website", [], EARLY),
                              ghl_contact("bo@example.com", "Bo", "Website", ["staff"], EARLY),
                              ghl_contact("cy@example.com", "Cy", "Walk-in", [], EARLY)])
    run(profile, "manual__1")
    members = {m["email"]: m["id"] for m in gymdesk_sim.records("members")}
    gymdesk_sim.seed("tasks", [
        {"id": f"t_app_{n}", "member_id": members[email], "title": title, "status": "open", "description": None,
         "due_at": None, "assignee": None, "created_at": EARLY, "updated_at": stamp(0)}
        for n, (email, title) in enumerate((("ana@example.com", "First call"), ("ana@example.com", "Book a class"),
                                            ("bo@example.com", "First call")))])
    run(profile, "manual__2")
    return members


def test_a_preview_lists_whom_a_rule_would_act_on_now_and_what_it_would_write(gymdesk_warehouse, profile, synced,
                                                                              ghl_sim, gymdesk_sim):
    before, calls = held(gymdesk_warehouse), (ghl_sim.calls(), gymdesk_sim.calls())
    with gymdesk_warehouse.connect() as conn:
        trial = preview(conn, profile, rule_named(profile, "web_leads_to_trial"), NOW)
        vip = preview(conn, profile, rule_named(profile, "vip_note"), NOW)
        walk_in = preview(conn, profile, rule_named(profile, "walk_ins_tagged"), NOW)
        calls_done = preview(conn, profile, rule_named(profile, "anas_calls"), NOW)
        first_only = preview(conn, profile, rule_named(profile, "vip_note"), NOW, limit=1)
        scan_two = preview(conn, profile, rule_named(profile, "vip_note"), NOW, scan=2)

    ana = synced["ana@example.com"]
    # new_contact: ghl: GHL's contacts; the staff member and the walk-in do not meet its conditions
    assert shown(trial) == [("ghl", "c_ana", "Ana Test", [
        ("set segment to 'trial' in the app", ana, None),
        ("create a task in GHL: 'Call Ana'", "c_ana", None)])]
    task = trial["records"][0]["actions"][1]
    assert task["body"] == "Lead from Website"
    assert task["due"] == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)  # a day after the event (now), at 09:00 (UTC)
    assert (trial["scanned"], trial["total"], trial["complete"]) == (3, 3, True)
    # no conditions: every GHL contact, newest changed first; the note rendered with each one's name
    assert sorted(r["source_id"] for r in vip["records"]) == ["c_ana", "c_bo", "c_cy"]
    assert [a["text"] for a in next(r for r in vip["records"] if r["source_id"] == "c_bo")["actions"]] == [
        "set segment to 'vip' in the app", "create a note in the app: 'Bo is a VIP now (vip_note)'"]
    # a raw read: GHL's own "source" field, from the payload last extracted
    assert [(r["source_id"], r["actions"][0]["text"]) for r in walk_in["records"]] == [
        ("c_cy", "add tag 'walkin' in GHL")]
    # a task's condition on its contact's first name (Bo's first call is not Ana's; a class booking is
    # no call); the tag goes to the task's contact in GHL. web_leads_to_trial's "Call Ana", mirrored
    # to Gymdesk, is a call of Ana's too.
    mirrored = next(t["id"] for t in gymdesk_sim.records("tasks") if t["title"] == "Call Ana")
    assert sorted(shown(calls_done), key=lambda r: r[2]) == [
        ("app", mirrored, "Call Ana (Ana Test)", [("add tag 'called' in GHL", "c_ana", None)]),
        ("app", "t_app_0", "First call (Ana Test)", [("add tag 'called' in GHL", "c_ana", None)])]
    assert len(first_only["records"]) == 1 and not first_only["complete"]
    assert scan_two["scanned"] == 2 and len(scan_two["records"]) == 2 and not scan_two["complete"]
    # nothing written: not in the warehouse, not to either side
    assert held(gymdesk_warehouse) == before
    assert (ghl_sim.calls(), gymdesk_sim.calls()) == calls
    assert rule_named(profile, "no_such_rule") is None


def test_a_tag_already_there_and_a_contact_on_one_side_only_write_nothing(gymdesk_warehouse, profile, synced):
    with gymdesk_warehouse.begin() as conn:  # Dee is staged (GHL) but not yet synced: no Gymdesk member
        conn.execute(sa.insert(staging_contact).values(
            profile="gymdesk", side="ghl", source_id="c_dee", email="dee@example.com", first_name="Dee",
            lead_source="Walk-in", tags=[], updated_at=NOW, content_hash="h", run_id="manual__2"))
        conn.execute(sa.update(staging_contact).where(staging_contact.c.source_id == "c_ana")
                     .values(tags=["called"]))
    with gymdesk_warehouse.connect() as conn:
        calls_done = preview(conn, profile, rule_named(profile, "anas_calls"), NOW)
        vip = preview(conn, profile, rule_named(profile, "vip_note"), NOW)

    assert {(r[1], r[3][0][2]) for r in shown(calls_done)} >= {
        ("t_app_0", "the contact already has tag 'called' there")}
    assert all(r[3][0][2] == "the contact already has tag 'called' there" for r in shown(calls_done))
    dee = next(r for r in vip["records"] if r["source_id"] == "c_dee")
    assert vip["records"][0]["source_id"] == "c_dee"  # newest changed first
    assert [a["skipped"] for a in dee["actions"]] == ["the contact is not in the app: a rule changes what exists"] * 2


def test_the_report_names_each_writes_rule_and_counts_the_rules_fired_a_dry_runs_too(gymdesk_warehouse, profile,
                                                                                       synced, ghl_sim):
    eng = gymdesk_warehouse
    with eng.connect() as conn:
        first = build_report(conn, profile, "manual__1")
    assert first["rules_fired"] == [{"rule": "web_leads_to_trial", "fired": 1, "writes": 3, "dry_run": False}]
    by_rule = sorted((w["entity"], w["side"], w["op"], ",".join(w["rules"])) for w in first["writes"])
    assert ("contact", "app", "create", "web_leads_to_trial") in by_rule  # the mapping's create, the segment in it
    assert ("task", "ghl", "create", "web_leads_to_trial") in by_rule
    assert ("contact", "app", "create", "") in by_rule  # Bo's and Cy's: the field mapping's own
    as_json = RunReport.model_validate(first)  # the console's JSON says the same
    assert [(f.rule, f.fired, f.writes) for f in as_json.rules_fired] == [("web_leads_to_trial", 1, 3)]
    assert sorted(w.rules for w in as_json.writes if w.rules) == [["web_leads_to_trial"]] * 3
    page = render(first)
    assert '<tr><td>web_leads_to_trial</td><td class="num">1</td><td class="num">3</td></tr>' in page
    assert '<td class="rule">web_leads_to_trial</td>' in page and '<td class="rule"></td>' in page

    ghl_sim.seed("contacts", [{**ghl_contact("ana@example.com", "Ana", "Website", ["vip"], EARLY),
                               "dateUpdated": stamp(2)}])
    run(profile, "manual__3", dry_run=True)
    with eng.connect() as conn:
        dry = build_report(conn, profile, "manual__3")
    assert dry["rules_fired"] == [{"rule": "vip_note", "fired": 1, "writes": 2, "dry_run": True}]
    assert sorted((w["entity"], w["side"], w["status"], w["rules"]) for w in dry["writes"]) == [
        ("contact", "app", "dry_run", ["vip_note"]), ("note", "app", "dry_run", ["vip_note"])]
    assert "A dry run: what they would write, nothing sent." in render(dry)

    with eng.connect() as conn:  # the real run before it: its own firings, not the dry run's
        assert fired_in_run(conn, "gymdesk", "manual__2") == []
        assert fired_in_run(conn, "gymdesk", "manual__1") == first["rules_fired"]

    run(profile, "manual__4")  # the real run fires the rule again and sends what the dry run showed
    with eng.connect() as conn:
        real = build_report(conn, profile, "manual__4")
        writes, _, _ = listed(conn, "gymdesk", "manual__4", False)
    assert real["rules_fired"] == [{"rule": "vip_note", "fired": 1, "writes": 2, "dry_run": False}]
    segment = next(w for w in writes if w["entity"] == "contact")
    assert segment["rules"] == ["vip_note"] and segment["status"] == "sent"
    assert segment["changes"] == [{"field": "app:segment", "before": "", "after": "vip"}]

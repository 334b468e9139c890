"""What the rules property (tests/integration/test_rules_property.py) found, each a plain example
that failed before its fix: tags GHL keeps alone wiped by an app change, tag events read on a side
that holds no tags, a change that left both sides alike unseen, and a rule's own write recording
the link's old state (so the rule fired again on the next change)."""

from __future__ import annotations

from crm_sync.profile import parse_profile

from tests.integration.test_rules_property import apply, planned, profile_text, run, seed, stamp


def test_tags_ghl_keeps_alone_survive_a_change_in_the_app(gymdesk_warehouse, ghl_sim, gymdesk_sim):
    """Found by the property: with tags mapped on GHL only (``tags: {app: null}``, as rules acting on
    GHL tags need), the app's empty tags were merged as the app removing every synced tag, so any
    change of the member in Gymdesk wiped the contact's tags in GHL (here: vip and gold, one put by a
    rule). The app holds no tags: its side of the pair says nothing about them."""
    rules = [{"name": "gold_on_done", "when": {"task_completed": True, "side": "app"},
              "then": [{"add_tag": {"side": "ghl", "tag": "gold"}}]}]
    profile = parse_profile(profile_text(rules), "property.yaml")
    seed([{"index": 0, "where": "ghl", "first": "Ana", "source": "Website", "tags": ["vip"], "task": False},
          {"index": 1, "where": "app", "first": "Bo", "source": "Referral", "tags": [], "task": True}],
         ghl_sim, gymdesk_sim)
    run(profile, "manual__1")
    run(profile, "manual__2")
    apply(("task_completed", 0, "app"), ghl_sim, gymdesk_sim)
    assert run(profile, "manual__3")["rules_fired"] == {"gold_on_done": 1}
    tags = {c["email"]: c.get("tags") for c in ghl_sim.records("contacts")}
    assert tags == {"p0@example.com": ["vip"], "p1@example.com": ["gold"]}

    for member in gymdesk_sim.records("members"):
        gymdesk_sim.seed("members", [{**member, "lead_source": "Facebook", "updated_at": stamp()}])
    run(profile, "manual__4")

    contacts = {c["email"]: c for c in ghl_sim.records("contacts")}
    assert {email: (c.get("tags"), c["source"]) for email, c in contacts.items()} == {
        "p0@example.com": (["vip"], "Facebook"), "p1@example.com": (["gold"], "Facebook")}
    assert planned(gymdesk_warehouse, "manual__4") == [
        ("contact", "ghl", "update", None, {"lead_source": "Facebook"})] * 2
    run(profile, "manual__5")
    assert planned(gymdesk_warehouse, "manual__5") == []


def test_a_change_in_the_app_is_no_tag_event_when_tags_are_ghl_alone(gymdesk_warehouse, ghl_sim, gymdesk_sim):
    """Found by the property: with tags on GHL only, the member's empty tags were compared with the
    contact's last synced ones, so every change of the member in Gymdesk fired ``tag_removed`` "on
    app" (a new note each time, for a tag still on the contact). A side that holds no tags has no tag
    events; the same tag really removed in GHL fires once."""
    rules = [{"name": "vip_lost", "when": {"tag_removed": "vip"},
              "then": [{"create_note": {"side": "app", "body": "{first_name} lost vip"}}]}]
    profile = parse_profile(profile_text(rules), "property.yaml")
    seed([{"index": 0, "where": "ghl", "first": "Ana", "source": "Website", "tags": ["vip"], "task": False}],
         ghl_sim, gymdesk_sim)
    run(profile, "manual__1")
    for number, source in ((2, "Facebook"), (3, "Referral")):
        apply(("lead_source", 0, "app", source), ghl_sim, gymdesk_sim)
        assert "rules_fired" not in run(profile, f"manual__{number}")
    assert gymdesk_sim.records("notes") == []

    apply(("tag_removed", 0, "vip"), ghl_sim, gymdesk_sim)
    assert run(profile, "manual__4")["rules_fired"] == {"vip_lost": 1}
    assert "rules_fired" not in run(profile, "manual__5")
    assert [n["content"] for n in gymdesk_sim.records("notes")] == ["Ana lost vip"]


def test_a_rules_own_write_records_the_state_the_mapping_settled(gymdesk_warehouse, ghl_sim, gymdesk_sim):
    """Found by the property: a lead source changed in GHL makes the mapping write the app only; the
    rule's own GHL write (a tag) recorded the link's old state as synced, so the next change of the
    contact (a tag added) fired the rule again, on both sides, for the same lead source change."""
    rules = [{"name": "moved", "when": {"field_changed": "lead_source"},
              "then": [{"add_tag": {"side": "ghl", "tag": "gold"}},
                       {"create_note": {"side": "app", "body": "{first_name} came from {lead_source}"}}]}]
    profile = parse_profile(profile_text(rules), "property.yaml")
    seed([{"index": 0, "where": "ghl", "first": "Ana", "source": "Website", "tags": [], "task": False}],
         ghl_sim, gymdesk_sim)
    run(profile, "manual__1")
    apply(("lead_source", 0, "ghl", "Referral"), ghl_sim, gymdesk_sim)
    assert run(profile, "manual__2")["rules_fired"] == {"moved": 1}
    assert "rules_fired" not in run(profile, "manual__3")

    apply(("tag_added", 0, "vip"), ghl_sim, gymdesk_sim)
    assert "rules_fired" not in run(profile, "manual__4")
    assert [n["content"] for n in gymdesk_sim.records("notes")] == ["Ana came from Referral"]
    assert sorted(ghl_sim.records("contacts")[0]["tags"]) == ["gold", "vip"]

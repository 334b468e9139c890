"""The rules page says each trigger, condition and action in plain words an operator reads without
the YAML: every trigger, every kind of test (nested groups one level deeper, relative dates as "30
days before the event", a side's own fields and GHL custom fields named as such) and every action
(a task's due time in the profile's zone)."""

from __future__ import annotations

import pytest

from crm_sync.profile import profile_by_name
from crm_sync.profile_rules import Rule
from crm_sync.web.rule_words import action, condition_lines, described, trigger


def rule(when: dict, then: dict | list, condition: dict | None = None) -> Rule:
    return Rule.model_validate({"name": "r", "when": when, "then": then, **({"if": condition} if condition else {})})


NOTE = {"create_note": {"side": "app", "body": "hi"}}


@pytest.mark.parametrize(("when", "words"), [
    ({"new_contact": "any"}, "a new contact appears in either side (a person no record of the other side matched)"),
    ({"field_changed": "lead_source", "to": "Website", "side": "ghl"}, 'a contact\'s lead_source changes to "Website" '
                                                                        "in GHL"),
    ({"field_changed": "email"}, "a contact's email changes in either side"),
    ({"tag_added": "vip", "side": "ghl"}, 'tag "vip" is added to a contact in GHL'),
    ({"tag_removed": "member", "side": "app"}, 'tag "member" is removed from a contact in the app'),
    ({"appointment_status": ["noshow", "cancelled"]}, 'an appointment\'s status becomes "noshow" or "cancelled" in '
                                                      "either side"),
    ({"task_completed": True, "side": "app"}, "a task is completed in the app"),
])
def test_each_trigger_in_words(when, words):
    assert trigger(rule(when, NOTE)) == words


def test_conditions_in_words_nested_one_level_deeper_per_group():
    condition = {"all": [
        {"field": "lead_source", "in": ["Website", "Facebook"]},
        {"tag": "staff", "absent": True},
        {"any": [{"field": "email", "empty": False}, {"field": "contact.phone", "contains": "415"},
                 {"field": "app:membership.plan", "equals": "gold"},
                 {"field": "ghl:customField.abc123", "gte": 3}]},
        {"field": "app:joined_at", "gt": "-30d"}, {"field": "app:visits", "lt": 2.5},
        {"field": "app:renews_at", "lte": "2027-01-31"}]}
    assert condition_lines(rule({"tag_added": "vip"}, NOTE, condition).if_) == [
        (0, "all of these hold:"),
        (1, 'lead_source is one of "Website", "Facebook"'),
        (1, 'the contact does not have tag "staff"'),
        (1, "any of these holds:"),
        (2, "email is not empty"),
        (2, 'the contact\'s phone contains "415"'),
        (2, 'the app\'s own field membership.plan is "gold"'),
        (2, "GHL custom field abc123 is at least 3"),
        (1, "the app's own field joined_at is after 30 days before the event"),
        (1, "the app's own field visits is less than 2.5"),
        (1, 'the app\'s own field renews_at is at or before "2027-01-31"'),
    ]
    assert condition_lines(None) == []


def test_actions_in_words_with_a_tasks_due_time_in_the_profiles_zone():
    profile = profile_by_name("gymdesk").model_copy(update={"timezone": "Europe/Berlin"})
    made = rule({"tag_added": "vip"}, [
        {"set": {"side": "app", "field": "segment", "value": "trial"}},
        {"add_tag": {"side": "ghl", "tag": "called"}},
        {"remove_tag": {"side": "app", "tag": "lead"}},
        {"create_task": {"side": "ghl", "title": "Call {first_name}", "due": {"days": 1, "at": "09:00"},
                         "assignee": "coach"}},
        {"create_task": {"side": "app", "title": "Check in", "due": {"hours": 2}}},
        {"create_note": {"side": "app", "body": "{first_name} is a VIP"}}])
    assert [action(act, profile) for act in made.then] == [
        'set the app\'s field segment to "trial"',
        'add tag "called" to the contact in GHL',
        'remove tag "lead" from the contact in the app',
        'create a task in GHL: "Call {first_name}", due 1 day after the event, at 09:00 (Europe/Berlin), '
        'assigned to "coach"',
        'create a task in the app: "Check in", due 2 hours after the event',
        'create a note in the app: "{first_name} is a VIP"']
    shown = described(made, profile)
    assert shown["name"] == "r" and shown["entity"] == "contact" and shown["legacy"] is False

"""What a profile rule decides on one record (issue 27), the pure part of the engine: whether its
trigger happened (against the record's last synced state), whether the record meets its conditions,
what a field reads, what a template renders, when a task is due, and the key that makes a firing
happen once. A user relies on each of these: a wrong answer is a write to a real CRM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml
from crm_sync.pipeline.rules import Subject, due_at, fire_key, met, read, render, trigger
from crm_sync.profile_rules import Condition, Due, Rule

EVENT = datetime(2026, 10, 10, 12, 0, tzinfo=UTC)


def rule(when: dict, **extra) -> Rule:
    return Rule.model_validate({"name": extra.pop("name", "r"), "when": when,
                                "then": [{"add_tag": {"side": "ghl", "tag": "x"}}], **extra})


def subject(values: dict | None = None, base: dict | None = None, *, entity: str = "contact", side: str = "ghl",
            new: bool = False, contact: dict | None = None, raw: dict | None = None,
            event_time: datetime = EVENT) -> Subject:
    values = values or {}
    return Subject(entity, side, "id1", values, base, event_time, 7, 7, new=new,
                   contact=values if contact is None and entity == "contact" else contact or {}, raw=raw or {})


def cond(**spec) -> Condition:
    return Condition.model_validate(spec)


# --- trigger -----------------------------------------------------------------------------------

@pytest.mark.parametrize("on", ["ghl", "app", "any"])
@pytest.mark.parametrize("side", ["ghl", "app"])
def test_new_contact_fires_for_a_new_person_on_its_side_only(on, side):
    fired = trigger(rule({"new_contact": on}), subject({"email": "a@x.io"}, None, side=side, new=True))
    assert fired == (f"new_contact on {side}" if on in ("any", side) else None)


def test_new_contact_does_not_fire_for_a_known_or_first_seen_but_matched_record():
    new_contact = rule({"new_contact": "any"})
    assert trigger(new_contact, subject({"email": "a@x.io"}, {"email": "a@x.io"})) is None
    assert trigger(new_contact, subject({"email": "a@x.io"}, None, new=False)) is None


def test_a_record_with_no_base_fires_only_new_contact():
    values = {"tags": ["vip"], "lead_source": "Website", "status": "noshow", "completed": True}
    first_seen = subject(values, None)
    for when in ({"tag_added": "vip"}, {"field_changed": "lead_source"},
                 {"field_changed": "lead_source", "to": "Website"}):
        assert trigger(rule(when), first_seen) is None
    assert trigger(rule({"tag_removed": "old"}), first_seen) is None
    assert trigger(rule({"appointment_status": "noshow"}), subject(values, None, entity="appointment")) is None
    assert trigger(rule({"task_completed": True}), subject(values, None, entity="task")) is None
    assert trigger(rule({"new_contact": "ghl"}), subject(values, None, new=True)) == "new_contact on ghl"


def test_field_changed_fires_on_a_real_change_and_not_on_case_or_spaces():
    changed = rule({"field_changed": "lead_source"})
    assert trigger(changed, subject({"lead_source": "Facebook"}, {"lead_source": "Website"})) == \
        "field_changed lead_source on ghl"
    assert trigger(changed, subject({"lead_source": " website "}, {"lead_source": "Website"})) is None
    assert trigger(changed, subject({"lead_source": "Website"}, {"lead_source": "Website"})) is None
    assert trigger(changed, subject({"lead_source": "Website"}, {})) == "field_changed lead_source on ghl"
    assert trigger(changed, subject({}, {"lead_source": "Website"})) == "field_changed lead_source on ghl"


def test_field_changed_to_narrows_to_the_new_value():
    to_fb = rule({"field_changed": "lead_source", "to": "facebook"})
    assert trigger(to_fb, subject({"lead_source": "Facebook "}, {"lead_source": "Website"})) is not None
    assert trigger(to_fb, subject({"lead_source": "Referral"}, {"lead_source": "Website"})) is None
    # away from the value is not "to" it
    assert trigger(to_fb, subject({"lead_source": "Website"}, {"lead_source": "Facebook"})) is None


@pytest.mark.parametrize("rule_side, side, fires", [("any", "ghl", True), ("any", "app", True), ("ghl", "ghl", True),
                                                    ("ghl", "app", False), ("app", "ghl", False)])
def test_a_change_fires_only_on_the_rule_side(rule_side, side, fires):
    added = rule({"tag_added": "vip", "side": rule_side})
    assert (trigger(added, subject({"tags": ["vip"]}, {"tags": []}, side=side)) is not None) == fires


def test_tag_added_and_removed_fold_case_and_spaces():
    added, removed = rule({"tag_added": "VIP"}), rule({"tag_removed": "vip"})
    assert trigger(added, subject({"tags": [" vip", "a"]}, {"tags": ["a"]})) == "tag_added VIP on ghl"
    assert trigger(added, subject({"tags": ["vip"]}, {"tags": ["Vip"]})) is None  # held before: no change
    assert trigger(added, subject({"tags": ["a"]}, {"tags": None})) is None
    assert trigger(removed, subject({"tags": None}, {"tags": ["VIP"]})) == "tag_removed vip on ghl"
    assert trigger(removed, subject({"tags": ["Vip"]}, {"tags": ["vip"]})) is None
    assert trigger(removed, subject({"tags": []}, {"tags": []})) is None


def test_appointment_status_fires_when_the_status_becomes_one_named():
    noshow = rule({"appointment_status": "noshow"})
    either = rule({"appointment_status": ["noshow", "cancelled"]})
    appointment = {"entity": "appointment"}
    assert trigger(noshow, subject({"status": "NoShow"}, {"status": "confirmed"}, **appointment)) == \
        "appointment_status NoShow on ghl"
    assert trigger(noshow, subject({"status": "noshow"}, {"status": "noshow"}, **appointment)) is None
    assert trigger(noshow, subject({"status": "cancelled"}, {"status": "confirmed"}, **appointment)) is None
    assert trigger(either, subject({"status": "cancelled"}, {"status": "noshow"}, **appointment)) is not None
    # a contact never fires an appointment rule
    assert trigger(noshow, subject({"status": "noshow"}, {"status": "confirmed"})) is None


def test_task_completed_fires_when_a_task_becomes_completed():
    done = rule({"task_completed": True, "side": "app"})
    task = {"entity": "task", "side": "app"}
    assert trigger(done, subject({"completed": True}, {"completed": False}, **task)) == "task_completed on app"
    assert trigger(done, subject({"completed": True}, {"completed": True}, **task)) is None
    assert trigger(done, subject({"completed": False}, {"completed": True}, **task)) is None
    assert trigger(done, subject({"completed": "true"}, {"completed": False}, **task)) is None  # not a boolean
    assert trigger(done, subject({"completed": True}, {"completed": False}, entity="task", side="ghl")) is None


# --- met -----------------------------------------------------------------------------------------

def test_no_condition_is_met():
    assert met(None, subject({}))


def test_equals_folds_case_and_spaces_and_compares_numbers_numerically():
    s = subject({"lead_source": "  Website ", "score": "42", "count": 3, "tags": ["B", "a"]})
    assert met(cond(field="lead_source", equals="website"), s)
    assert not met(cond(field="lead_source", equals="web"), s)
    assert met(cond(field="score", equals=42), s)
    assert met(cond(field="score", equals="42.0"), s)
    assert met(cond(field="count", equals="3"), s)
    assert not met(cond(field="count", equals=4), s)
    assert met(cond(field="tags", equals=["a", "b"]), s)  # a list: the same members, order and case aside
    assert not met(cond(field="tags", equals="a"), s)
    assert not met(cond(field="missing", equals="x"), s)


def test_in_and_contains():
    s = subject({"lead_source": "Facebook ", "tags": ["Gold", "vip"], "company_name": "Acme Gym Ltd"})
    assert met(cond(field="lead_source", **{"in": ["website", "FACEBOOK"]}), s)
    assert not met(cond(field="lead_source", **{"in": ["website"]}), s)
    assert not met(cond(field="tags", **{"in": ["vip"]}), s)  # a list is not one of the options
    assert met(cond(field="company_name", contains="gym"), s)
    assert not met(cond(field="company_name", contains="pool"), s)
    assert met(cond(field="tags", contains="GOLD"), s)  # a list: a member, case aside
    assert not met(cond(field="tags", contains="go"), s)
    assert not met(cond(field="missing", contains="x"), s)
    assert not met(cond(field="count", contains="1"), subject({"count": 123}))  # not text


def test_empty():
    s = subject({"a": None, "b": "", "c": [], "d": "x", "e": 0, "f": False})
    for name in ("a", "b", "c", "missing"):
        assert met(cond(field=name, empty=True), s) and not met(cond(field=name, empty=False), s)
    for name in ("d", "e", "f"):
        assert met(cond(field=name, empty=False), s) and not met(cond(field=name, empty=True), s)


def test_tag_present_or_absent_folds_case_and_spaces():
    s = subject({"tags": [" VIP ", "member"]})
    assert met(cond(tag="vip"), s)
    assert not met(cond(tag="vip", absent=True), s)
    assert met(cond(tag="staff", absent=True), s)
    assert not met(cond(tag="staff"), s)
    assert met(cond(tag="staff", absent=True), subject({"tags": None}))
    assert not met(cond(tag="vip"), subject({}))


def test_numbers_compare_numerically_including_numeric_strings():
    s = subject({"score": " 10 ", "n": 10, "f": 2.5})
    assert met(cond(field="score", gt=9), s) and not met(cond(field="score", gt=10), s)
    assert met(cond(field="score", gte=10), s) and met(cond(field="n", lte=10), s)
    assert met(cond(field="n", lt=10.5), s) and not met(cond(field="n", lt=10), s)
    assert met(cond(field="f", gt=2), s)
    assert met(cond(field="n", gt=9.0), s)  # "9" < "10" as numbers, unlike as text
    assert not met(cond(field="score", gt=100), s)


@pytest.mark.parametrize("value", ["abc", True, None, [1], {"a": 1}, ""])
def test_a_value_of_the_wrong_type_is_not_met(value):
    s = subject({"v": value})
    for op in ("gt", "gte", "lt", "lte"):
        assert not met(cond(field="v", **{op: 0}), s)
        assert not met(cond(field="v", **{op: "2026-01-01T00:00:00+00:00"}), s)
        assert not met(cond(field="v", **{op: "-30d"}), s)


def test_dates_compare_as_moments_iso_or_relative_to_the_event():
    s = subject({"joined": "2026-10-01T08:00:00Z", "local": "2026-10-01T10:00:00+02:00", "n": 5})
    assert met(cond(field="joined", gt="2026-09-30"), s)
    assert met(cond(**yaml.safe_load("{field: joined, gt: 2026-09-30}")), s)  # YAML's own date: a naive one is UTC
    assert not met(cond(**yaml.safe_load("{field: joined, gt: 2026-10-02}")), s)
    assert not met(cond(field="joined", gt="2026-10-01T09:00:00+00:00"), s)
    assert met(cond(field="local", equals="2026-10-01T10:00:00+02:00"), s)
    assert met(cond(field="local", gte="2026-10-01T08:00:00+00:00"), s)  # the same instant
    assert not met(cond(field="local", gt="2026-10-01T08:00:00+00:00"), s)
    # event on 10-10 12:00: -10d is 09-30 12:00, -9d is 10-01 12:00
    assert met(cond(field="joined", gt="-10d"), s) and not met(cond(field="joined", gt="-9d"), s)
    assert met(cond(field="joined", lt="-200h"), s)  # 10-01 08:00 < 10-01 16:00
    assert not met(cond(field="joined", lt="-220h"), s)  # 09-30 20:00
    assert met(cond(field="joined", lt="+1m"), s)
    # the same record judged at a later event
    later = subject(s.values, event_time=EVENT + timedelta(days=30))
    assert not met(cond(field="joined", gt="-10d"), later)
    assert not met(cond(field="n", gt="-10d"), s)  # a number is not a moment


def test_all_and_any_nest():
    s = subject({"lead_source": "Website", "tags": ["vip"], "score": 7})
    web, vip, staff, high = (cond(field="lead_source", equals="website"), cond(tag="vip"), cond(tag="staff"),
                             cond(field="score", gt=10))
    assert met(Condition(all=[web, vip]), s)
    assert not met(Condition(all=[web, staff]), s)
    assert met(Condition(any=[staff, vip]), s)
    assert not met(Condition(any=[staff, high]), s)
    assert met(Condition(all=[web, Condition(any=[staff, Condition(all=[vip, cond(field="score", lte=7)])])]), s)
    assert not met(Condition(all=[web, Condition(any=[staff, Condition(all=[vip, high])])]), s)
    parsed = cond(**{"all": [{"field": "lead_source", "in": ["Website"]}, {"tag": "staff", "absent": True}]})
    assert met(parsed, s)


# --- read --------------------------------------------------------------------------------------

def test_read_canonical_contact_and_raw_fields():
    raw = {"ghl": {"firstName": "Ana", "source": "Web", "customFields": [
        {"id": "cf_stage", "value": "lead"}, {"id": "cf_other", "key": "contact.tier", "field_value": "gold"},
        "junk"]},
        "app": {"plan": {"name": "Monthly", "price": "40"}, "segment": "trial"}}
    s = subject({"title": "Call"}, entity="task", contact={"email": "ana@x.io"}, raw=raw)
    assert read("title", s) == "Call"
    assert read("missing", s) is None
    assert read("contact.email", s) == "ana@x.io"
    assert read("contact.phone", s) is None
    assert read("app:segment", s) == "trial"
    assert read("app:plan.name", s) == "Monthly"
    assert read("app:plan.price.x", s) is None
    assert read("ghl:firstName", s) == "Ana"
    assert read("ghl:customField.cf_stage", s) == "lead"
    assert read("ghl:customField.cf_other", s) == "gold"  # field_value, as GHL writes it back
    assert read("ghl:customField.contact.tier", s) == "gold"  # by its key too
    assert read("ghl:customField.nope", s) is None
    assert read("app:segment", subject({}, raw={"app": None})) is None  # no payload (our own write)
    assert met(cond(field="ghl:customField.cf_stage", equals="LEAD"), s)
    assert met(cond(field="app:plan.price", gte=40), s) and not met(cond(field="app:plan.price", gt=40), s)


# --- render ------------------------------------------------------------------------------------

def test_render_fills_fields_lists_and_the_rule_and_empties_missing_ones():
    r = rule({"tag_added": "vip"}, name="vip_note")
    s = subject({"first_name": "Ana", "tags": ["a", "b"], "last_name": None}, raw={"app": {"segment": "gold"}})
    assert render("Hi {first_name} {last_name}!", s, r) == "Hi Ana !"
    assert render("{missing}  call   {first_name}", s, r) == "call Ana"
    assert render("tags: {tags}", s, r) == "tags: a, b"
    assert render("by {rule} ({app:segment}) {contact.first_name}", s, r) == "by vip_note (gold) Ana"
    assert render("at {event_time}", s, r) == "at 2026-10-10 12:00 UTC"
    assert render("{tags}", subject({"tags": []}), r) == ""
    assert render(None, s, r) is None


def test_a_body_keeps_its_line_breaks_and_a_title_is_one_line():
    r = rule({"tag_added": "vip"})
    s = subject({"first_name": "Ana"})
    assert render("Hello {first_name},\n\n- call back\n- book a class\n", s, r, lines=True) == \
        "Hello Ana,\n\n- call back\n- book a class"
    assert render("Call\n{first_name}", s, r) == "Call Ana"


@pytest.mark.parametrize("test", [{"in": ["vip"]}, {"equals": "vip"}, {"contains": "vip"}, {"empty": False},
                                  {"gt": 3}])
@pytest.mark.parametrize("odd", [{"name": "vip"}, [{"name": "vip"}], [["vip"]]])
def test_a_raw_value_of_an_odd_shape_is_not_met_and_never_an_error(test, odd):
    s = subject({}, raw={"app": {"plan": odd}})
    assert met(cond(field="app:plan", **test), s) is (test == {"empty": False})


# --- due_at ------------------------------------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")  # DST ends 2026-11-01 02:00 local, starts 2026-03-08 02:00


def test_due_at_a_wall_clock_time_across_the_autumn_dst_change():
    saturday = datetime(2026, 10, 31, 14, 0, tzinfo=UTC)  # 10:00 EDT (UTC-4)
    due = due_at(Due(days=1, at="09:00"), saturday, NEW_YORK)
    assert due == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)  # 09:00 EST (UTC-5): not 13:00
    assert due.astimezone(NEW_YORK).hour == 9
    assert due_at(Due(days=0, at="09:00"), saturday, NEW_YORK) == datetime(2026, 10, 31, 13, 0, tzinfo=UTC)


def test_due_at_a_wall_clock_time_across_the_spring_dst_change():
    saturday = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)  # 10:00 EST
    assert due_at(Due(days=1, at="09:00"), saturday, NEW_YORK) == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)  # EDT
    # 02:30 does not exist on that day: moved forward by the gap's length, never before the gap
    assert due_at(Due(days=1, at="02:30"), saturday, NEW_YORK) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_due_at_the_day_is_the_local_day_of_the_shifted_event():
    late = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)  # still 10-09 22:00 in New York
    assert due_at(Due(days=1, at="09:00"), late, NEW_YORK) == datetime(2026, 10, 10, 13, 0, tzinfo=UTC)
    assert due_at(Due(days=1, at="09:00"), late, ZoneInfo("UTC")) == datetime(2026, 10, 11, 9, 0, tzinfo=UTC)


def test_due_at_without_a_time_is_elapsed_time_and_whole_seconds():
    event = datetime(2026, 10, 31, 14, 0, 5, 123456, tzinfo=UTC)
    assert due_at(Due(days=1, hours=2.5), event, NEW_YORK) == datetime(2026, 11, 1, 16, 30, 5, tzinfo=UTC)
    assert due_at(Due(), event, NEW_YORK) == event.replace(microsecond=0)


# --- fire_key ----------------------------------------------------------------------------------

def test_fire_key_is_stable_and_changes_with_the_base():
    r = rule({"tag_added": "vip"}, name="vip")
    base = {"tags": [], "email": "a@x.io", "lead_source": "Web"}
    key = fire_key("gymdesk", r, "tag_added vip on ghl", subject({"tags": ["vip"]}, base))
    same = subject({"tags": ["vip"], "other": 1}, dict(reversed(list(base.items()))), event_time=EVENT + timedelta(1))
    assert fire_key("gymdesk", r, "tag_added vip on ghl", same) == key  # order, values and time aside
    assert fire_key("gymdesk", r, "tag_added vip on ghl", subject({"tags": ["vip"]}, {**base, "tags": ["x"]})) != key
    assert fire_key("gymflow", r, "tag_added vip on ghl", subject({}, base)) != key
    assert fire_key("gymdesk", rule({"tag_added": "vip"}, name="other"), "tag_added vip on ghl",
                    subject({}, base)) != key
    assert fire_key("gymdesk", r, "tag_added vip on app", subject({}, base, side="app")) != key


def test_fire_key_of_a_new_contact_ignores_the_base():
    r = rule({"new_contact": "any"})
    assert fire_key("p", r, "new_contact on ghl", subject({}, None, new=True)) == \
        fire_key("p", r, "new_contact on ghl", subject({"x": 1}, {"x": 2}, new=True))
    assert len(fire_key("p", r, "e", subject({}))) == 64

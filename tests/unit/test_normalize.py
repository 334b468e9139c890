"""Normalisation: the values both sides hold in different formats become the same canonical value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from crm_sync.pipeline.normalize import (
    RuleBroken,
    canonical_contact,
    canonical_record,
    content_hash,
    email,
    format_moment,
    phone,
    text,
    timestamp,
    to_side,
)
from crm_sync.profile import profile_by_name


def test_emails_are_lower_cased_and_validated():
    assert email("  Ava.Garcia@Example.COM ") == "ava.garcia@example.com"
    with pytest.raises(RuleBroken) as broken:
        email("ava@@example")
    assert broken.value.broken.rule == "email_format" and "ava@@example" in broken.value.broken.detail


@pytest.mark.parametrize("raw", ["(415) 201-1001", "+1 415-201-1001", "415.201.1001", "+14152011001"])
def test_phones_in_any_format_become_e164(raw):
    assert phone(raw, "US") == "+14152011001"


def test_phone_region_comes_from_the_profile():
    assert phone("030 1234567", "DE") == "+49301234567"


def test_unparsable_phone_names_the_rule():
    with pytest.raises(RuleBroken) as broken:
        phone("12", "US")
    assert broken.value.broken.rule == "phone_format"


def test_text_is_unicode_normalised_and_trimmed():
    assert text("  Mu\u0308ller \n ") == "Müller"
    assert text("   ") is None


def test_timestamps_become_utc():
    assert timestamp("2026-11-20T10:00:00+02:00") == datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert timestamp(1763632800000) == datetime(2025, 11, 20, 10, tzinfo=UTC)
    with pytest.raises(RuleBroken):
        timestamp("yesterday")


@pytest.mark.parametrize("raw", ["2026-13-45", "99999-01-01T00:00:00Z", 10**18, -(10**13)])
def test_out_of_range_dates_break_the_timestamp_rule(raw):
    with pytest.raises(RuleBroken) as broken:
        timestamp(raw)
    assert broken.value.broken.rule == "timestamp_format" and str(raw) in broken.value.broken.detail


def test_a_note_body_keeps_its_line_breaks_and_spacing_while_names_are_tidied():
    profile = profile_by_name("gymdesk")
    body = "  Line one\n\tindented  twice\nשורה \U0001f680 "
    note = canonical_record("note", {"content": body}, "app", profile.fields("note"), "US")
    assert note["body"] == body.strip()
    person = canonical_contact({"first_name": " Zoë  \U0001f680 "}, "app", profile.fields("contact"), "US")
    assert person["first_name"] == "Zoë \U0001f680"


def test_the_same_person_in_both_formats_has_one_hash():
    profile = profile_by_name("gymdesk")
    fields = profile.fields("contact")
    ghl = {"email": "AVA@example.com", "phone": "+1 415-201-1001", "firstName": "Ava", "lastName": "Garcia"}
    desk = {"email": "ava@example.com", "phone": "(415) 201-1001", "first_name": " Ava ", "last_name": "Garcia"}
    a = canonical_contact(ghl, "ghl", fields, "US")
    b = canonical_contact(desk, "app", fields, "US")
    assert a == b and content_hash(a) == content_hash(b)


def test_a_full_name_field_splits_into_first_and_last_and_is_written_back_whole():
    fields = profile_by_name("gist").fields("contact")
    values = canonical_contact({"name": "  Ana  María Pérez ", "email": "ana@example.com"}, "app", fields, "US")
    assert (values["first_name"], values["last_name"]) == ("Ana María", "Pérez")
    # A patch of the last name alone still writes the whole name.
    assert to_side("contact", {"last_name": "Lopez"}, "app", fields, full=values) == {"name": "Ana María Lopez"}


def test_an_app_status_maps_to_the_canonical_value_both_ways():
    fields = profile_by_name("mygadgetrepairs").fields("task")
    app_task = {"title": "Replace screen", "dueDate": "2026-12-01", "status": "Completed", "description": None}
    values = canonical_record("task", app_task, "app", fields, "US")
    assert values["completed"] is True and values["due_date"] == "2026-12-01"
    assert to_side("task", {"completed": False}, "app", fields) == {"status": "Pending"}
    assert to_side("task", {"completed": True, "due_date": "2026-12-01"}, "ghl", fields) == {
        "completed": True, "dueDate": "2026-12-01T12:00:00Z"}  # a local day is noon in the profile's zone


def test_an_unmapped_status_is_refused_naming_the_profile_key():
    fields = profile_by_name("mygadgetrepairs").fields("task")
    with pytest.raises(RuleBroken) as broken:
        canonical_record("task", {"title": "x", "status": "Someday"}, "app", fields, "US")
    assert broken.value.broken.rule == "value_unmapped"
    assert "entities.task.fields.completed (app field 'status')" in broken.value.broken.detail


def test_a_date_and_a_time_field_make_one_moment_and_split_again():
    fields = profile_by_name("mygadgetrepairs").fields("appointment")
    app = {"date": "05-Dec-2026", "time": "14:30", "status": "Booked", "title": "Drop-off"}
    values = canonical_record("appointment", app, "app", fields, "US")
    assert values["start"] == "2026-12-05T14:30:00Z" and values["status"] == "confirmed"
    assert to_side("appointment", values, "app", fields) == {
        "title": "Drop-off", "date": "05-Dec-2026", "time": "14:30", "status": "Booked"}


def test_tags_are_a_sorted_set_from_strings_or_objects():
    fields = profile_by_name("gymflow").fields("contact")
    values = canonical_contact({"tags": ["vip", " Trial ", "vip"]}, "app", fields, "US")
    assert values["tags"] == ["Trial", "vip"]
    with pytest.raises(RuleBroken) as broken:
        canonical_contact({"first_name": {"nested": 1}}, "app", fields, "US")
    assert broken.value.broken.rule == "type"


def test_unix_seconds_and_day_patterns_are_read_and_written():
    assert timestamp(1764590400) == datetime(2025, 12, 1, 12, tzinfo=UTC)
    assert timestamp("05-Dec-2026", "%d-%b-%Y") == datetime(2026, 12, 5, tzinfo=UTC)
    assert format_moment(datetime(2026, 12, 5, 9, tzinfo=UTC), "%d-%b-%Y") == "05-Dec-2026"
    assert format_moment(datetime(2026, 12, 5, 9, tzinfo=UTC), "unix") == 1796461200

"""Normalisation: the values both sides hold in different formats become the same canonical value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from crm_sync.pipeline.normalize import RuleBroken, canonical_contact, content_hash, email, phone, text, timestamp
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


def test_the_same_person_in_both_formats_has_one_hash():
    profile = profile_by_name("gymdesk")
    fields = profile.contact_fields()
    ghl = {"email": "AVA@example.com", "phone": "+1 415-201-1001", "firstName": "Ava", "lastName": "Garcia"}
    desk = {"email": "ava@example.com", "phone": "(415) 201-1001", "first_name": " Ava ", "last_name": "Garcia"}
    a = canonical_contact(ghl, "ghl", fields, "US")
    b = canonical_contact(desk, "app", fields, "US")
    assert a == b and content_hash(a) == content_hash(b)

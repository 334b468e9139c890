"""``app.webhooks`` is validated with the rest of the profile: a typo or an impossible signature names
the file and the key before any webhook arrives; the built-in apps that push say so, and say the
shape is assumed where the app publishes no webhook documentation."""

from __future__ import annotations

import pytest

from crm_sync.paths import PROFILES_DIR
from crm_sync.profile import ProfileError, load_profiles, parse_profile

PUSHING = {"gymdesk", "gymflow", "mygadgetrepairs", "gist", "generic"}


def test_the_built_in_apps_that_push_carry_the_block_marked_assumed():
    profiles = {p.name: p for p in load_profiles()}
    assert {name for name, p in profiles.items() if p.app.webhooks} == PUSHING
    for name in PUSHING:
        hooks = profiles[name].app.webhooks
        assert hooks.assumed is True and hooks.docs_url is None, name  # none of them documents its webhooks
        assert profiles[name].app_asset == f"crm_sync_app_{name}"
    assert profiles["csv_import"].app_asset is None


def gymdesk_with(old: str, new: str) -> str:
    text = (PROFILES_DIR / "gymdesk.yaml").read_text()
    assert old in text
    return text.replace(old, new, 1)


def test_a_misspelt_webhooks_key_names_the_file_and_the_key():
    with pytest.raises(ProfileError, match=r"my\.yaml: .*key 'app\.webhooks\.event\.record': Extra inputs are "
                                           "not permitted"):
        parse_profile(gymdesk_with("      record_id: data.id\n", "      record: data.id\n"), "my.yaml")
    with pytest.raises(ProfileError, match=r"my\.yaml: .*key 'app\.webhooks\.signature\.encoding': Input should be "
                                           "'hex' or 'base64'"):
        parse_profile(gymdesk_with("encoding: hex", "encoding: base32"), "my.yaml")


def test_an_entity_the_sync_does_not_know_is_refused():
    with pytest.raises(ProfileError, match=r"key 'app\.webhooks\.event\.types\.booking': Input should be 'contact', "
                                           "'task', 'note' or 'appointment'"):
        parse_profile(gymdesk_with("booking: appointment", "booking: class"), "my.yaml")


def test_a_timestamp_in_the_signed_text_needs_its_header():
    text = gymdesk_with(" timestamp_header: X-Gymdesk-Timestamp,", "")
    with pytest.raises(ProfileError, match=r"my\.yaml: .*key 'app\.webhooks\.signature': .*signed_text "
                                           "timestamp.body needs timestamp_header"):
        parse_profile(text, "my.yaml")


def test_an_event_must_say_where_its_entity_is():
    text = gymdesk_with("      types: {member: contact, task: task, note: note, booking: appointment}\n", "")
    with pytest.raises(ProfileError, match=r"key 'app\.webhooks\.event': .*entity \(a path in the body\) or types"):
        parse_profile(text, "my.yaml")


def test_without_the_block_the_app_does_not_push():
    text = (PROFILES_DIR / "gymdesk.yaml").read_text()
    start = text.index("  # The app's own webhooks")
    end = text.index("  entities:", start)
    profile = parse_profile(text[:start] + text[end:], "my.yaml")
    assert profile.app.webhooks is None and profile.app_asset is None


def test_a_csv_source_cannot_declare_webhooks():
    text = (PROFILES_DIR / "csv_import.yaml").read_text()
    assert "\napp:\n" in text
    text = text.replace("\napp:\n", "\napp:\n  webhooks: {event: {types: {contact: contact}}}\n", 1)
    with pytest.raises(ProfileError, match=r"my\.yaml: .*key 'app': .*a csv source pushes nothing"):
        parse_profile(text, "my.yaml")

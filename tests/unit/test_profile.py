"""Profiles are validated on load: a typo names the file, the key and what was expected."""

from __future__ import annotations

import pytest
from crm_sync.paths import PROFILES_DIR
from crm_sync.profile import ProfileError, load_profiles, parse_profile


def test_built_in_profiles_load():
    names = {p.name for p in load_profiles()}
    assert "gymdesk" in names


def test_a_misspelt_key_names_the_file_and_the_key():
    text = (PROFILES_DIR / "gymdesk.yaml").read_text().replace("overlap_minutes:", "overlap_minuts:")
    with pytest.raises(ProfileError, match=r"my\.yaml: .*key 'overlap_minuts': Extra inputs are not permitted"):
        parse_profile(text, "my.yaml")


def test_a_wrong_value_says_what_was_expected():
    text = (PROFILES_DIR / "gymdesk.yaml").read_text().replace("conflict: latest_wins", "conflict: newest")
    with pytest.raises(ProfileError, match=r"key 'entities\.contact\.conflict': Input should be 'latest_wins', "
                                           r"'ghl' or 'app' \(got 'newest'\)"):
        parse_profile(text, "my.yaml")


def test_an_unknown_canonical_field_is_refused():
    text = (PROFILES_DIR / "gymdesk.yaml").read_text().replace("first_name: first_name", "nickname: first_name")
    with pytest.raises(ProfileError, match="unknown canonical field.*nickname"):
        parse_profile(text, "my.yaml")


def test_broken_yaml_is_reported_with_the_file():
    with pytest.raises(ProfileError, match="my.yaml: not valid YAML"):
        parse_profile("name: [unclosed", "my.yaml")


def test_every_built_in_app_has_a_profile_and_one_dag_id():
    profiles = load_profiles()
    assert {p.name for p in profiles} >= {"gymdesk", "gymflow", "mygadgetrepairs", "gist", "generic", "csv_import"}
    assert len({p.dag_id for p in profiles}) == len(profiles)


def test_a_synced_entity_without_its_app_api_is_refused_before_any_run():
    text = (PROFILES_DIR / "gymflow.yaml").read_text().replace("    note:\n      <<: *gymflow", "    notes:\n      <<: *gymflow")
    with pytest.raises(ProfileError, match=r"key 'app\.entities\.notes.\[key\]': Input should be 'contact', 'task', 'note'"):
        parse_profile(text, "my.yaml")


def test_writing_to_the_app_needs_its_create_and_update_operations():
    text = (PROFILES_DIR / "generic.yaml").read_text().replace(
        '      create: {method: POST, path: /api/notes}\n', '')
    with pytest.raises(ProfileError, match=r"key 'app\.entities\.note': direction both writes to the app"):
        parse_profile(text, "my.yaml")


def test_direction_is_per_entity_so_a_profile_can_start_read_only():
    text = (PROFILES_DIR / "gymflow.yaml").read_text().replace("direction: both", "direction: off")
    # gymflow's rules could never fire with nothing synced: refused by name until they are disabled.
    with pytest.raises(ProfileError, match=r"rule 'engaged_member'\): when\.new_contact: entities\.contact is not "
                                           r"synced"):
        parse_profile(text, "my.yaml")
    profile = parse_profile(text.replace("\n    when:", "\n    enabled: false\n    when:"), "my.yaml")
    assert [rule.name for rule in profile.active_rules] == []
    assert profile.synced() == []
    assert not profile.entities["contact"].writes_to("ghl") and not profile.entities["contact"].writes_to("app")


def test_appointments_cannot_be_written_to_ghl():
    text = (PROFILES_DIR / "gymdesk.yaml").read_text().replace(
        "  appointment:\n    direction: ghl_to_app", "  appointment:\n    direction: both")
    with pytest.raises(ProfileError, match="writing appointments to GHL is not supported"):
        parse_profile(text, "my.yaml")


def test_deleting_children_on_the_app_needs_its_delete_operation():
    text = (PROFILES_DIR / "mygadgetrepairs.yaml").read_text().replace(
        "  note:\n    direction: both\n", "  note:\n    direction: both\n    on_delete: delete\n")
    with pytest.raises(ProfileError, match=r"key 'app\.entities\.note\.delete': missing; entities\.note\.on_delete "
                                           "is delete"):
        parse_profile(text, "my.yaml")


def test_a_profile_adds_its_own_nicknames_and_a_bad_group_names_itself():
    text = (PROFILES_DIR / "gymdesk.yaml").read_text() + "\nmatching:\n  nicknames: [[Sasha, Alexander]]\n"
    assert parse_profile(text, "my.yaml").matching.nicknames == [["Sasha", "Alexander"]]
    for bad in ("[[Sasha]]", "[[Sasha, SASHA]]", "[[Sasha, '  ']]"):
        with pytest.raises(ProfileError, match=r"my\.yaml: .*matching\.nicknames group 1"):
            parse_profile((PROFILES_DIR / "gymdesk.yaml").read_text() + f"\nmatching:\n  nicknames: {bad}\n",
                          "my.yaml")

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
    text = (PROFILES_DIR / "gymdesk.yaml").read_text().replace("first_name: {ghl", "nickname: {ghl")
    with pytest.raises(ProfileError, match="unknown canonical field.*nickname"):
        parse_profile(text, "my.yaml")


def test_broken_yaml_is_reported_with_the_file():
    with pytest.raises(ProfileError, match="my.yaml: not valid YAML"):
        parse_profile("name: [unclosed", "my.yaml")

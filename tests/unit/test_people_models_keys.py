"""The people search's folding: what a user types finds what the warehouse holds."""

from __future__ import annotations

import pytest

from crm_sync.pipeline.people_search_keys import fold_name, phone_digits


@pytest.mark.parametrize("typed, stored", [("jose", "José García"), ("JOSE GARCIA", "José  García"),
                                           ("soren", "Søren Kierkegaard"), ("dmitr", "Дмитрий")])
def test_a_folded_query_is_inside_the_folded_name(typed, stored):
    assert fold_name(typed) in fold_name(stored)


def test_fold_name_keeps_single_spaces_and_empty_for_nothing():
    assert fold_name("  Anne   Marie ") == "anne marie"
    assert fold_name(None) == "" and fold_name("") == ""


@pytest.mark.parametrize("typed", ["(555) 010-2030", "+1 555.010.2030", "5550102030", "555 010 2030"])
def test_a_phone_typed_any_way_is_inside_the_stored_digits(typed):
    stored = phone_digits("+15550102030", "US")
    assert stored == "15550102030"
    assert phone_digits(typed, "US") in stored


def test_a_valid_local_number_becomes_e164_digits_in_the_region():
    assert phone_digits("020 7946 0958", "GB") == "442079460958"
    assert phone_digits("(212) 555-0142", "US") == "12125550142"


def test_too_few_digits_is_not_a_phone():
    assert phone_digits("12", "US") is None
    assert phone_digits("pat", "US") is None
    assert phone_digits("2030", "US") == "2030"

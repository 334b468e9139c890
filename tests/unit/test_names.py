"""First names compared as one person's: folded, nicknames of each other, swapped, generations apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from crm_sync.pipeline import names


@pytest.mark.parametrize(("value", "expected"), [
    ("Bob Jr.", ("bob", "jr")), ("Smith Sr", ("smith", "sr")), ("Henry III", ("henry", "iii")),
    ("Ford Junior", ("ford", "jr")), ("Jr", ("jr", None)), ("José", ("jose", None)), (None, (None, None))])
def test_a_generation_suffix_is_split_from_the_name(value, expected):
    assert names.split_suffix(value) == expected


def test_the_list_knows_nicknames_both_ways_and_the_profile_adds_its_own():
    known = names.nickname_pairs()
    assert {("bill", "william"), ("william", "bill"), ("bob", "robert"), ("liz", "elizabeth")} <= known
    assert ("sasha", "alexander") not in known and ("ana", "anna") not in known
    assert {("sasha", "alexander"), ("alexander", "sacha")} <= names.nickname_pairs([["Sasha", "Alexander", "Sacha"]])


def test_compare_says_what_the_first_names_are():
    ghl = pd.DataFrame({"first_name": ["Bill", "Chen", "Ann", "Robert", "Zoë", None, "Kate"],
                        "last_name": ["Øster", "Li", "Lee", "Smith Sr", "Ray", "Ray", "Moss"]})
    app = pd.DataFrame({"first_name": ["William", "Li", "ANN", "Bob", "Chloé", "Zoe", "Kathrin"],
                        "last_name": ["Oster", "Chen", "Lee", "Smith Jr", "Ray", "Ray", "Moss"]})
    rows = np.arange(7)
    seen = names.Names(ghl, app).compare(rows, rows)
    assert seen.first.tolist() == [names.NICKNAME, names.SWAPPED, names.SAME, names.NICKNAME, names.OTHER,
                                   names.UNKNOWN, names.OTHER]
    assert seen.generation_differs.tolist() == [False, False, False, True, False, False, False]
    assert seen.last_agrees.tolist() == [True, True, True, True, True, True, True]
    assert seen.plausible_nickname.tolist() == [False] * 6 + [True]  # Kate / Kathrin: same initial, not listed


def test_a_names_other_form_is_not_a_nickname_but_diminutives_are():
    """Louis / Louise, Edwin / Edwina: the package lists them together, but they are usually two
    people of one household (a wrong merge); Bill / William, Frank / Frankie stay nicknames."""
    known = names.nickname_pairs()
    for one, other in [("louis", "louise"), ("edwin", "edwina"), ("justin", "justina"), ("ernest", "ernestine"),
                       ("august", "augustine"), ("angel", "angela"), ("clement", "clementine")]:
        assert (one, other) not in known and (other, one) not in known, (one, other)
    assert {("bill", "william"), ("bob", "robert"), ("frank", "frankie"), ("peggy", "margaret")} <= known

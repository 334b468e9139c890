"""First names compared as one person's: folded, nicknames of each other, swapped, generations apart."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
from crm_sync.pipeline import names, normalize


@pytest.mark.parametrize(("value", "expected"), [
    ("Bob Jr.", ("bob", "jr")), ("Smith Sr", ("smith", "sr")), ("Henry III", ("henry", "iii")),
    ("Ford Junior", ("ford", "jr")), ("Jr", ("jr", None)), ("José", ("jose", None)), (None, (None, None))])
def test_a_generation_suffix_is_split_from_the_name(value, expected):
    assert names.split_suffix(value) == expected


def test_the_list_knows_nicknames_both_ways_and_the_profile_adds_its_own():
    known = names.nickname_pairs()
    assert {("bill", "william"), ("william", "bill"), ("bob", "robert"), ("liz", "elizabeth")} <= known
    assert ("xander", "alexander") not in known and ("ana", "anna") not in known
    assert {("xander", "alexander"), ("alexander", "xandr")} <= names.nickname_pairs([["Xander", "Alexander", "Xandr"]])


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


def test_the_curated_supplement_adds_what_the_package_lacks_and_each_line_says_where_it_comes_from():
    known = names.nickname_pairs()
    assert {("sasha", "alexander"), ("alexander", "sasha"), ("sasha", "alexandra"), ("bill", "willy"),
            ("willy", "bill"), ("bob", "rob"), ("katie", "katherine"), ("paco", "francisco"), ("dima", "dmitriy"),
            ("pepe", "jose")} <= known
    with names.SUPPLEMENT.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(names.supplement()) and all(len(row["source"]) > 20 for row in rows)
    for group in names.supplement():
        keys = {normalize.name_key(n) for n in group}
        assert None not in keys and len(keys) == len(group) >= 2, group
        assert not [(a, b) for a in keys for b in keys if a != b and names.gendered_form(a, b)], group


@pytest.mark.parametrize(("one", "other"), [
    ("alexander", "alexandra"),  # Sasha is both's, in a group each: the two never pair
    ("katherine", "catherine"), ("mikhail", "michael"), ("pavel", "paul"),  # a group each: Katie, Misha, Pasha pair
    ("chris", "tina"), ("al", "bert"), ("kit", "kate"), ("billy", "rupert"),  # two diminutives of one name
    ("sasha", "michael"), ("willy", "wilma"), ("pasha", "pavla")])
def test_names_that_may_be_two_people_are_no_nicknames_of_each_other(one, other):
    known = names.nickname_pairs()
    assert (one, other) not in known and (other, one) not in known

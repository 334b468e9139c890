"""Matching on a generated population with nicknames, swapped names, typoed email domains and
households (bench/matching_quality.py; the 20,000-people figures are in bench/RESULTS.md)."""

from __future__ import annotations

import pytest

from bench.matching_quality import measure


@pytest.mark.parametrize("seed", [3, 4])
def test_no_wrong_merge_and_almost_every_person_found(seed):
    result = measure(3000, seed)
    assert result["wrong"] == 0 and result["precision"] == 1.0, result["wrong_pairs"]
    assert result["recall"] >= 0.98, result
    assert result["recall_of_those"] >= 0.98, result  # of the pairs that share an email or a phone
    assert {"nickname", "swapped", "domain_typo", "household"} <= set(result["recall_by_case"])

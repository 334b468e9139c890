"""How `make chaos` counts duplicates and lost records from what both sides hold."""

from __future__ import annotations

from collections import Counter

from harness.chaos_sides import judge


def held(*records: tuple[str, str, str, dict]) -> Counter:
    return Counter((side, collection, owner, tuple(sorted((k, repr(v)) for k, v in values.items())))
                   for side, collection, owner, values in records)


TASK = ("ghl", "tasks", "ada@example.com", {"title": "Intro", "completed": False})
CONTACT = ("app", "members", "ada@example.com", {"first_name": "Ada", "phone": "+14155550100"})


def test_the_same_records_count_nothing():
    assert judge(held(TASK, CONTACT), held(CONTACT, TASK))[:2] == (0, 0)


def test_a_record_held_twice_is_one_duplicate():
    duplicates, lost, detail = judge(held(TASK, CONTACT), held(TASK, TASK, CONTACT))
    assert (duplicates, lost) == (1, 0) and "ghl/tasks/ada@example.com" in detail[0]


def test_a_missing_record_or_one_with_other_values_is_lost():
    changed = ("app", "members", "ada@example.com", {"first_name": "Ada", "phone": None})
    assert judge(held(TASK, CONTACT), held(CONTACT))[:2] == (0, 1)
    assert judge(held(TASK, CONTACT), held(TASK, changed))[:2] == (0, 1)


def test_a_record_nobody_expected_is_a_duplicate():
    stray = ("app", "tasks", "ada@example.com", {"title": "Intro"})
    assert judge(held(TASK), held(TASK, stray))[:2] == (1, 0)

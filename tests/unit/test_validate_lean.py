"""The fast lane's lean validate gives Great Expectations' verdicts: the same failing rows, rules,
expectation names and samples, for contacts and for children, bad and good values alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from crm_sync.pipeline.validate import run_expectations

NOW = datetime.now(UTC)
FUTURE = (NOW + timedelta(days=2)).timestamp()


def contacts() -> pd.DataFrame:
    rows = [
        {"source_id": "c1", "email": "a@example.com", "phone": "+14155550101", "same_person_as": None},
        {"source_id": None, "email": "b@example.com", "phone": None, "same_person_as": None},  # id missing
        {"source_id": "c3", "email": "broken@@example", "phone": "0415", "same_person_as": "c9"},
        {"source_id": "c4", "email": None, "phone": "+4915112345678", "same_person_as": None},
        {"source_id": "c4", "email": "d@example.com", "phone": None, "same_person_as": None},  # duplicate id
    ]
    frame = pd.DataFrame(rows, dtype=object)
    frame["side"], frame["entity"] = "ghl", "contact"
    frame["record_key"] = "contact:ghl:" + frame["source_id"].astype(str)
    frame["updated_at"] = [NOW, NOW, NOW, datetime.fromtimestamp(FUTURE, UTC), None]
    frame["updated_epoch"] = [NOW.timestamp(), NOW.timestamp(), NOW.timestamp(), FUTURE, None]
    return frame


def children() -> pd.DataFrame:
    rows = [
        {"entity": "task", "source_id": "t1", "contact_id": "c1", "unknown_contact": None, "completed": True,
         "status": None, "note_date": None, "date_epoch": None},
        {"entity": "task", "source_id": "t2", "contact_id": None, "unknown_contact": None, "completed": "yes",
         "status": None, "note_date": None, "date_epoch": None},
        {"entity": "appointment", "source_id": "a1", "contact_id": "c7", "unknown_contact": "c7",
         "completed": None, "status": "maybe", "note_date": None, "date_epoch": None},
        {"entity": "note", "source_id": "n1", "contact_id": "c1", "unknown_contact": None, "completed": None,
         "status": None, "note_date": "2099-01-01T00:00:00Z", "date_epoch": 4070908800.0},
    ]
    frame = pd.DataFrame(rows, dtype=object)
    frame["side"] = "app"
    frame["record_key"] = frame["entity"] + ":app:" + frame["source_id"]
    frame["updated_at"], frame["updated_epoch"] = NOW, NOW.timestamp()
    return frame


@pytest.mark.slow  # Great Expectations' import and context take seconds
@pytest.mark.parametrize(("make", "table"), [(contacts, "staging_contact"), (children, "staging_record")])
def test_the_lean_checks_fail_the_same_rows_for_the_same_rules_as_great_expectations(make, table):
    gx_failures, gx_outcomes = run_expectations(make(), table)
    lean_failures, lean_outcomes = run_expectations(make(), table, lean=True)

    assert sorted((i, b.rule, b.detail) for i, b in lean_failures) == sorted((i, b.rule, b.detail)
                                                                             for i, b in gx_failures)
    assert lean_outcomes == gx_outcomes
    assert {b.rule for _, b in lean_failures} >= ({"id_missing", "id_duplicate", "email_format", "phone_format",
                                                   "duplicate_person", "updated_in_future"}
                                                  if table == "staging_contact" else
                                                  {"contact_missing", "waiting_for_contact", "completed_not_boolean",
                                                   "status_unknown", "date_in_future"})


def test_the_lean_checks_pass_a_clean_table_whatever_columns_are_empty():
    frame = contacts().iloc[[0]].copy()
    failures, outcomes = run_expectations(frame, "staging_contact", lean=True)
    assert failures == [] and all(o["success"] and o["unexpected_count"] == 0 for o in outcomes)
    frame["phone"] = None  # a column with no value at all: nothing to match
    failures, outcomes = run_expectations(frame, "staging_contact", lean=True)
    assert failures == [] and all(o["success"] for o in outcomes)
    one_task = children().iloc[[0]].copy()
    assert run_expectations(one_task, "staging_record", lean=True)[0] == []

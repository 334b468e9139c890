"""Three-way, field-by-field merge: each rule, and the reason recorded for it."""

from __future__ import annotations

from datetime import UTC, datetime

from crm_sync.pipeline.merge import merge
from crm_sync.profile import FieldMap

FIELDS = {"email": FieldMap(ghl="email", app="email"), "company_name": FieldMap(ghl="c", app="c"),
          "lead_source": FieldMap(ghl="s", app="s", fallback="Gymdesk")}
EARLY, LATE = datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)


def rec(**values):
    return {"email": "a@x.com", "company_name": None, "lead_source": "Web", **values}


def test_only_one_side_changed_since_the_base_wins_even_if_older():
    base = rec(company_name="Old")
    merged = merge(rec(company_name="New", updated_at=EARLY), rec(company_name="Old", updated_at=LATE), base,
                   FIELDS, "latest_wins")
    assert merged.values["company_name"] == "New"
    assert merged.decisions[0]["winner"] == "ghl" and "only GHL changed" in merged.decisions[0]["reason"]


def test_both_changed_latest_wins():
    merged = merge(rec(company_name="G", updated_at=EARLY), rec(company_name="A", updated_at=LATE),
                   rec(company_name="Old"), FIELDS, "latest_wins")
    assert merged.values["company_name"] == "A"


def test_both_changed_source_of_truth_wins():
    merged = merge(rec(company_name="G", updated_at=EARLY), rec(company_name="A", updated_at=LATE),
                   rec(company_name="Old"), FIELDS, "ghl")
    assert merged.values["company_name"] == "G" and merged.decisions[0]["reason"] == "source_of_truth: ghl"


def test_keep_non_empty_without_a_base():
    merged = merge(rec(company_name=None), rec(company_name="Gym"), None, FIELDS, "ghl")
    assert merged.values["company_name"] == "Gym"


def test_a_field_cleared_on_one_side_since_the_base_stays_cleared():
    merged = merge(rec(company_name=None), rec(company_name="Gym"), rec(company_name="Gym"), FIELDS, "app")
    assert merged.values["company_name"] is None


def test_fallback_fills_a_field_empty_on_both_sides():
    merged = merge(rec(lead_source=None), rec(lead_source=None), None, FIELDS, "latest_wins")
    assert merged.values["lead_source"] == "Gymdesk"
    assert merged.patch_for(rec(lead_source=None)) == {"lead_source": "Gymdesk"}


def test_equal_records_need_no_patch_and_no_decision():
    merged = merge(rec(), rec(), None, FIELDS, "latest_wins")
    assert merged.decisions == [] and merged.patch_for(rec()) == {}


def test_a_field_can_have_its_own_source_of_truth():
    fields = {**FIELDS, "company_name": FieldMap(ghl="c", app="c", conflict="ghl")}
    merged = merge(rec(company_name="G", email="g@x.com", updated_at=EARLY),
                   rec(company_name="A", email="a@y.com", updated_at=LATE), rec(company_name="Old"), fields,
                   "latest_wins")
    assert merged.values["company_name"] == "G" and merged.values["email"] == "a@y.com"
    reasons = {d["field"]: d["reason"] for d in merged.decisions}
    assert reasons["company_name"] == "source_of_truth: ghl (this field's own rule)"
    assert reasons["email"].startswith("latest_wins")


def test_tags_merge_as_sets_against_the_base():
    fields = {"tags": FieldMap(ghl="tags", app="tags")}
    merged = merge({"tags": ["b", "new-in-ghl"]}, {"tags": ["a", "b", "new-in-app"]}, {"tags": ["a", "b"]}, fields,
                   "latest_wins")
    # "a" was removed in GHL, both additions are kept, "b" untouched.
    assert merged.values["tags"] == ["b", "new-in-app", "new-in-ghl"]
    assert merged.decisions[0]["winner"] == "both"


def test_a_field_the_app_does_not_hold_is_ghls_value_not_a_removal():
    fields = {**FIELDS, "tags": FieldMap(ghl="tags", app=None)}  # tags GHL keeps alone
    base = rec(tags=["newsletter"])
    merged = merge(rec(tags=["newsletter", "vip"], lead_source="Referral"), rec(tags=None), base, fields,
                   "latest_wins")
    assert merged.values["tags"] == ["newsletter", "vip"]
    assert not [d for d in merged.decisions if d["field"] == "tags"]  # nothing to write for them

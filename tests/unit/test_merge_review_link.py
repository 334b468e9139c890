"""The first merge of a pair a person linked in the review queue erases no value by the records' clocks.

The demo's family contact ("Family Account") and member ("Parent Family") were linked by review;
latest_wins settled their different names by the records' updated-at, and the member's name was
gone from both systems. Pairs matched by the rules, and later merges, keep latest_wins."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_sync.pipeline.merge import merge
from crm_sync.profile import FieldMap

FIELDS = {"first_name": FieldMap(ghl="firstName", app="first_name"),
          "company_name": FieldMap(ghl="companyName", app="company", conflict="app"),
          "lead_source": FieldMap(ghl="s", app="s", fallback="Gymdesk")}
EARLY, LATE = datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)


@pytest.mark.parametrize(("ghl_at", "app_at"), [(EARLY, EARLY), (LATE, EARLY), (EARLY, LATE), (None, None)])
def test_a_review_link_keeps_both_sides_different_values_and_fills_only_empty_ones(ghl_at, app_at):
    ghl = {"first_name": "Family", "company_name": None, "lead_source": "Web", "updated_at": ghl_at}
    app = {"first_name": "Parent", "company_name": "Gym Co", "lead_source": "Walk-in", "updated_at": app_at}
    merged = merge(ghl, app, None, FIELDS, "latest_wins", keep_conflicts=True)
    assert merged.patch_for(ghl) == {"company_name": "Gym Co"} and merged.patch_for(app) == {}
    assert merged.kept == {"first_name", "lead_source"}  # no fallback over a kept value either
    reasons = {d["field"]: (d["winner"], d["reason"]) for d in merged.decisions}
    assert reasons["first_name"] == ("neither", "linked by review: each side keeps its own (the next change settles it)")


def test_a_source_of_truth_still_decides_and_without_a_review_link_latest_wins_as_before():
    ghl = {"first_name": "Family", "company_name": "G", "lead_source": None, "updated_at": LATE}
    app = {"first_name": "Parent", "company_name": "A", "lead_source": None, "updated_at": EARLY}
    linked = merge(ghl, app, None, FIELDS, "latest_wins", keep_conflicts=True)
    assert linked.patch_for(ghl) == {"company_name": "A", "lead_source": "Gymdesk"}  # the field's own rule: app
    matched = merge(ghl, app, None, FIELDS, "latest_wins")
    assert matched.patch_for(app) == {"first_name": "Family", "lead_source": "Gymdesk"} and not matched.kept
    tie = merge({**ghl, "updated_at": EARLY}, app, None, FIELDS, "latest_wins")
    assert tie.values["first_name"] == "Family"  # a tie goes to GHL, as the demo's data expects

"""latest_wins with no later side (the same updated-at, or none on either): no tie-break erases a value.

The demo's family contact ("Family Account") and member ("Parent Family"), both updated at one moment,
were linked by review; GHL won the tie and the member's name was gone from both systems."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_sync.pipeline.merge import merge
from crm_sync.profile import FieldMap

FIELDS = {"first_name": FieldMap(ghl="firstName", app="first_name"),
          "lead_source": FieldMap(ghl="s", app="s", fallback="Gymdesk")}
AT = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.mark.parametrize(("ghl_at", "app_at"), [(AT, AT), (None, None)], ids=["same moment", "no updated-at"])
def test_a_tie_keeps_each_sides_value_and_writes_neither(ghl_at, app_at):
    ghl = {"first_name": "Family", "lead_source": "Web", "updated_at": ghl_at}
    app = {"first_name": "Parent", "lead_source": "Walk-in", "updated_at": app_at}
    merged = merge(ghl, app, None, FIELDS, "latest_wins")
    assert merged.patch_for(ghl) == {} and merged.patch_for(app) == {}
    assert merged.values == {"first_name": None, "lead_source": None}  # no agreed value: the next change decides
    assert {d["field"]: d["winner"] for d in merged.decisions} == {"first_name": "neither", "lead_source": "neither"}


def test_a_later_side_still_wins_and_a_source_of_truth_ignores_the_clock():
    ghl = {"first_name": "Family", "lead_source": None, "updated_at": AT.replace(day=21)}
    app = {"first_name": "Parent", "lead_source": None, "updated_at": AT}
    assert merge(ghl, app, None, FIELDS, "latest_wins").patch_for(app) == {"first_name": "Family",
                                                                          "lead_source": "Gymdesk"}
    tie = {**ghl, "updated_at": AT}
    assert merge(tie, app, None, FIELDS, "app").patch_for(tie) == {"first_name": "Parent", "lead_source": "Gymdesk"}

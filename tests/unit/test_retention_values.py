"""What retention keeps of a step's stats and of a write's decisions: the figures and ids, not the
values of records (crm_sync.pipeline.retention); the same stats are what a task returns (XCom)."""

from __future__ import annotations

from crm_sync.pipeline.retention import REMOVED, _decisions_without_values, stats_without_values


def test_sample_values_and_dead_letter_errors_go_and_the_figures_stay():
    stats = {"validated": 4, "passed": True, "expectations": [
        {"rule": "email_format", "unexpected_count": 1, "samples": [
            {"side": "app", "entity": "contact", "id": "mem_1", "value": "'ann@@example.com'"}]},
        {"rule": "id_missing", "unexpected_count": 0, "samples": []}],
        "dead_letter": [{"id": 7, "op": "create", "error": "POST /contacts -> 422: ann@example.com taken"}]}
    scrubbed = stats_without_values(stats)
    assert scrubbed["expectations"][0]["samples"] == [{"side": "app", "entity": "contact", "id": "mem_1",
                                                       "value": REMOVED}]
    assert scrubbed["dead_letter"] == [{"id": 7, "op": "create", "error": REMOVED}]
    assert {k: scrubbed[k] for k in ("validated", "passed")} == {"validated": 4, "passed": True}
    assert "ann@" in str(stats) and "ann@" not in str(scrubbed)  # the original is left as it was
    assert stats_without_values(None) is None and stats_without_values({"rows": 3}) == {"rows": 3}


def test_a_decision_keeps_field_winner_and_reason_but_no_value():
    decisions = [{"field": "email", "winner": "ghl", "reason": "latest_wins: updated more recently",
                  "ghl": "ann@example.com", "app": "ann@old.example.com", "value": "ann@example.com"}]
    assert _decisions_without_values(decisions) == [{"field": "email", "winner": "ghl",
                                                     "reason": "latest_wins: updated more recently",
                                                     "ghl": "", "app": "", "value": ""}]
    assert _decisions_without_values(None) == []

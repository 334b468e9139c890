"""Reconcile settles pairs that already agree in bulk; only pairs that differ reach the per-pair merge."""

from __future__ import annotations

import pandas as pd
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.reconcile.planner import Planner
from crm_sync.profile import CANONICAL, profile_by_name


def side(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame([{**dict.fromkeys(CANONICAL["contact"]), "deleted": False, **row} for row in rows])
    return frame.set_index("source_id", drop=False)


def test_identical_pairs_are_settled_and_the_rest_are_left_to_merge():
    plan = Planner(RunContext(profile=profile_by_name("gymdesk"), run_id="r1", run_type="manual"), "contact")
    same = {"email": "ava@example.com", "first_name": "Ava", "lead_source": "Web", "tags": ["vip"]}
    ghl = side([{"source_id": "g1", **same, "content_hash": "G1"},
                {"source_id": "g2", "email": "bo@example.com", "first_name": "Bo", "lead_source": "Web",
                 "content_hash": "G2"},
                {"source_id": "g3", "email": "cy@example.com", "lead_source": "Web", "content_hash": "G3"},
                {"source_id": "g4", "email": "di@example.com", "content_hash": "G4"}])
    app = side([{"source_id": "a1", **same, "content_hash": "A1"},
                {"source_id": "a2", "email": "bo@example.com", "first_name": "Bob", "lead_source": "Web",
                 "content_hash": "A2"},
                {"source_id": "a3", "email": "cy@example.com", "lead_source": "Web", "deleted": True,
                 "content_hash": "A3"},
                # both sides lack the lead source: the profile's fallback must still be written
                {"source_id": "a4", "email": "di@example.com", "content_hash": "A4"}])
    links = pd.DataFrame({"id": [1, 2, 3, 4, 5], "ghl_id": ["g1", "g2", "g3", "g4", "g9"],
                          "app_id": ["a1", "a2", "a3", "a4", "a9"]})

    left = plan.settle_identical(links, ghl, app)

    assert list(left.id) == [2, 3, 4]  # differs, deleted on the app, fallback due; 5 has no staged records
    [settled] = plan.link_updates
    assert (settled["id"], settled["ghl_hash"], settled["app_hash"]) == (1, "G1", "A1")
    assert settled["base"] == {name: same.get(name) for name in plan.fields}
    assert plan.outbox == []


def test_with_a_rule_watching_contact_changes_a_pair_that_moved_alike_is_left_to_pair():
    """Both sides agree, yet the contact changed since its last sync (the same edit on both, or GHL's
    last tag removed where the app holds no tags): a change rule must see it, so pair() settles it."""
    plan = Planner(RunContext(profile=profile_by_name("gymdesk"), run_id="r1", run_type="manual"), "contact")
    person = {"email": "oli@example.com", "first_name": "Oli", "lead_source": "Web"}
    pam = {**person, "email": "pam@example.com"}
    ghl = side([{"source_id": "g1", **person, "content_hash": "G1"}, {"source_id": "g2", **pam, "content_hash": "G2"}])
    app = side([{"source_id": "a1", **person, "content_hash": "A1"}, {"source_id": "a2", **pam, "content_hash": "A2"}])
    unchanged = {name: pam.get(name) for name in plan.fields}
    links = pd.DataFrame({"id": [1, 2], "ghl_id": ["g1", "g2"], "app_id": ["a1", "a2"],
                          "base": [{**{name: person.get(name) for name in plan.fields}, "first_name": "Olly"},
                                   unchanged]})

    assert not plan.rules_watch  # gymdesk's rules fire on new contacts only
    assert list(plan.settle_identical(links, ghl, app).id) == []  # no rule watches: both settled in bulk
    plan.link_updates.clear()
    plan.rules_watch = True  # as with a tag_added or field_changed rule
    left = plan.settle_identical(links, ghl, app)

    assert list(left.id) == [1]
    assert [(u["id"], u["base"]) for u in plan.link_updates] == [(2, unchanged)]

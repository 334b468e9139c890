"""The review queue's service: open ambiguous matches side by side, decisions stored as ids, undo."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa
from crm_sync import review
from crm_sync.pipeline.context import utcnow
from crm_sync.pipeline.matching import find_matches
from crm_sync.warehouse.db import create, migrate
from crm_sync.warehouse.tables import review_candidate, review_decision, staging_contact, xref

pytestmark = [pytest.mark.integration]
PEOPLE = {  # a family sharing one email on both sides (a member without a first name), and one clean pair
    ("ghl", "gFam"): ("the.family@example.com", "Dana"), ("app", "mFam1"): ("the.family@example.com", None),
    ("app", "mFam2"): ("the.family@example.com", "Eli"), ("ghl", "gAva"): ("ava@example.com", "Ava"),
    ("app", "mAva"): ("ava@example.com", "Ava"),
}


@pytest.fixture
def conn(warehouse_url):
    eng = create(warehouse_url)
    migrate(eng)
    rows = [{"profile": "gymdesk", "side": side, "source_id": sid, "email": email, "first_name": first,
             "last_name": "Doe", "content_hash": "h", "run_id": "r1"} for (side, sid), (email, first) in PEOPLE.items()]
    frames = {side: pd.DataFrame([r for r in rows if r["side"] == side]) for side in ("ghl", "app")}
    _pairs, ambiguous = find_matches(frames["ghl"], frames["app"])
    with eng.begin() as c:
        c.execute(sa.insert(staging_contact), rows)
        assert review.replace_candidates(c, "gymdesk", "r1", ambiguous) == 2
    with eng.begin() as c:
        yield c
    eng.dispose()


def test_pending_lists_each_ambiguous_group_with_both_records_fields(conn):
    items = review.pending(conn, "gymdesk")
    assert [item["id"] for item in items] == ["app:mFam1"]
    (item,) = items
    assert [(r["side"], r["id"]) for r in item["records"]] == [("app", "mFam1"), ("app", "mFam2"), ("ghl", "gFam")]
    assert item["records"][1]["fields"]["first_name"] == "Eli"
    assert item["records"][2]["fields"]["email"] == "the.family@example.com"
    assert set(item["records"][0]["fields"]) == set(review.resolve("gymdesk").fields("contact"))
    assert [(p["ghl_id"], p["app_id"], p["reason"], p["decision"]) for p in item["pairs"]] == [
        ("gFam", "mFam1", "by email, shared household contact", None),
        ("gFam", "mFam2", "by email, another first name, shared household contact", None)]


def test_a_decision_keeps_ids_and_who_when_and_can_be_undone(conn):
    link = review.decide(conn, "gymdesk", "gFam", "mFam1", "link", "ops@example.com")
    apart = review.decide(conn, "gymdesk", "gFam", "mFam2", "apart", "ops@example.com")
    stored = conn.execute(sa.select(review_decision).where(review_decision.c.id == link)).one()._mapping
    assert {k for k, v in stored.items() if v is not None} == {"id", "profile", "ghl_id", "app_id", "decision",
                                                                "decided_by", "decided_at"}
    assert abs((stored["decided_at"] - utcnow()).total_seconds()) < 60
    assert review.pending(conn, "gymdesk") == []  # every pair decided: nothing left to review
    assert [(d["id"], d["decision"], d["active"]) for d in review.decisions(conn, "gymdesk")] == [
        (apart, "apart", True), (link, "link", True)]

    review.undo(conn, "gymdesk", apart, "lead@example.com")
    (item,) = review.pending(conn, "gymdesk")
    assert [p["decision"] and p["decision"]["decision"] for p in item["pairs"]] == ["link", None]
    undone = next(d for d in review.decisions(conn, "gymdesk") if d["id"] == apart)
    assert undone["undone_by"] == "lead@example.com" and not undone["active"]
    with pytest.raises(review.ReviewError, match=f"no active review decision {apart}"):
        review.undo(conn, "gymdesk", apart, "lead@example.com")


def test_a_new_decision_on_a_pair_replaces_the_active_one(conn):
    first = review.decide(conn, "gymdesk", "gFam", "mFam2", "apart", "a")
    second = review.decide(conn, "gymdesk", "gFam", "mFam2", "link", "b")
    active = [d["id"] for d in review.decisions(conn, "gymdesk") if d["active"]]
    assert active == [second] and first != second
    assert review.decide(conn, "gymdesk", "gFam", "mFam2", "link", "c") == second  # said again: the same one


def test_requests_that_cannot_be_honoured_say_why(conn):
    with pytest.raises(review.ReviewError, match="no profile named 'nope'"):
        review.pending(conn, "nope")
    with pytest.raises(review.ReviewError, match="decision must be one of link, apart"):
        review.decide(conn, "gymdesk", "gFam", "mFam1", "merge", "a")
    conn.execute(sa.insert(review_candidate), [  # stale rows of the queue: one record gone, one linked since
        {"profile": "gymdesk", "ghl_id": "gFam", "app_id": app_id, "reason": "by email", "run_id": "r1"}
        for app_id in ("mGone", "mAva")])
    with pytest.raises(review.ReviewError, match="app:mGone is not a staged contact of profile gymdesk"):
        review.decide(conn, "gymdesk", "gFam", "mGone", "link", "a")
    conn.execute(sa.insert(xref).values(profile="gymdesk", entity="contact", ghl_id="gAva", app_id="mAva",
                                        updated_at=utcnow()))
    with pytest.raises(review.ReviewError, match="app:mAva is already linked to ghl:gAva"):
        review.decide(conn, "gymdesk", "gFam", "mAva", "link", "a")
    review.decide(conn, "gymdesk", "gFam", "mFam1", "link", "a")
    with pytest.raises(review.ReviewError, match=r"ghl:gFam is already linked by decision \d+ .*undo it first"):
        review.decide(conn, "gymdesk", "gFam", "mFam2", "link", "a")


@pytest.mark.parametrize("decision", ["link", "apart"])
def test_only_a_pair_the_queue_proposed_can_be_decided_and_nothing_else_is_stored(conn, decision):
    before = conn.execute(sa.select(sa.func.count()).select_from(review_decision)).scalar_one()
    for ghl_id, app_id in (("gAva", "mAva"), ("gFam", "mAva"), ("gAva", "mFam1")):  # staged, never candidates
        with pytest.raises(review.ReviewError, match=f"ghl:{ghl_id} and app:{app_id} are not a pair the review "
                                                     "queue of profile gymdesk proposed: only its candidate pairs"):
            review.decide(conn, "gymdesk", ghl_id, app_id, decision, "a")
    assert conn.execute(sa.select(sa.func.count()).select_from(review_decision)).scalar_one() == before
    assert review.decide(conn, "gymdesk", "gFam", "mFam2", decision, "a")  # a candidate: taken


def test_undo_takes_only_a_decision_of_its_own_profile(conn):
    conn.execute(sa.insert(review_candidate).values(profile="gymflow", ghl_id="gFam", app_id="mFam1",
                                                    reason="by email", run_id="r1"))
    conn.execute(sa.insert(staging_contact), [{"profile": "gymflow", "side": side, "source_id": sid,
                                               "content_hash": "h", "run_id": "r1"}
                                              for side, sid in (("ghl", "gFam"), ("app", "mFam1"))])
    theirs = review.decide(conn, "gymflow", "gFam", "mFam1", "apart", "b")
    with pytest.raises(review.ReviewError, match=f"profile gymdesk has no active review decision {theirs}"):
        review.undo(conn, "gymdesk", theirs, "a")
    assert [d["active"] for d in review.decisions(conn, "gymflow")] == [True]


def test_a_pair_whose_ghl_record_is_linked_leaves_the_queue(conn):
    assert [(p["ghl_id"], p["app_id"]) for item in review.pending(conn, "gymdesk") for p in item["pairs"]] == [
        ("gFam", "mFam1"), ("gFam", "mFam2")]
    conn.execute(sa.insert(xref).values(profile="gymdesk", entity="contact", ghl_id="gFam", app_id="mFam1",
                                        updated_at=utcnow()))  # the run after "link gFam with mFam1"
    assert review.pending(conn, "gymdesk") == []
    with pytest.raises(review.ReviewError, match="ghl:gFam and app:mFam2 are not a pair the review queue"):
        review.decide(conn, "gymdesk", "gFam", "mFam2", "apart", "a")  # a page opened before that run

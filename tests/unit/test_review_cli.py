"""`python -m crm_sync.cli review`: list the open ambiguous matches, decide, undo; errors exit 1."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from crm_sync import cli, review
from crm_sync.warehouse.tables import staging_contact


@pytest.fixture
def warehouse(sqlite_warehouse):
    eng = sqlite_warehouse
    people = [("ghl", "g1", "Dana"), ("app", "a1", "Dana"), ("app", "a2", "Eli")]
    with eng.begin() as conn:
        conn.execute(sa.insert(staging_contact), [
            {"profile": "gymdesk", "side": side, "source_id": sid, "email": "fam@example.com", "first_name": first,
             "content_hash": "h", "run_id": "r1"} for side, sid, first in people])
        review.replace_candidates(conn, "gymdesk", "r1", {("ghl", "g1"): ["app:a1 by email", "app:a2 by email"]})
    return eng


def test_list_shows_the_records_side_by_side_then_link_apart_and_undo(warehouse, capsys):
    assert cli.main(["review", "list", "--profile", "gymdesk"]) == 0
    shown = capsys.readouterr().out
    assert "item app:a1" in shown and "app:a2" in shown and "Eli" in shown and "[undecided]" in shown
    assert cli.main(["review", "link", "--profile", "gymdesk", "--ghl", "g1", "--app", "a1", "--user", "ops"]) == 0
    assert capsys.readouterr().out.startswith("decision 1: link ghl:g1 app:a1 by ops")
    assert cli.main(["review", "apart", "--profile", "gymdesk", "--ghl", "g1", "--app", "a2"]) == 0
    capsys.readouterr()
    assert cli.main(["review", "list", "--profile", "gymdesk"]) == 0
    assert "no open ambiguous matches for gymdesk" in capsys.readouterr().out
    assert cli.main(["review", "undo", "--profile", "gymdesk", "--id", "1", "--user", "lead"]) == 0
    capsys.readouterr()
    assert cli.main(["review", "list", "--profile", "gymdesk", "--decisions"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["decision"], r["active"], r["undone_by"]) for r in rows] == [
        (2, "apart", True, None), (1, "link", False, "lead")]


def test_an_unknown_profile_or_record_exits_1_with_the_reason(warehouse, capsys):
    assert cli.main(["review", "list", "--profile", "gymdask"]) == 1
    assert "review list: no profile named 'gymdask'" in capsys.readouterr().err
    assert cli.main(["review", "link", "--profile", "gymdesk", "--ghl", "g1", "--app", "nope"]) == 1
    assert "ghl:g1 and app:nope are not a pair the review queue of profile gymdesk proposed" in capsys.readouterr().err
    assert cli.main(["review", "undo", "--profile", "gymdesk", "--id", "9"]) == 1
    assert "no active review decision 9" in capsys.readouterr().err

"""A report's lists filtered, searched and paged by the warehouse, on SQLite and PostgreSQL alike: the
same rows for the same query (PostgreSQL's ILIKE, ->> and json-as-text where SQLite has lower, LIKE
and json_extract), and the counts of the whole run whatever the page."""

from __future__ import annotations

import pytest

from crm_sync.pipeline.report import build_report
from crm_sync.pipeline.report_pages import ReportQuery
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.db import create, migrate

from tests.conftest import warehouse_database
from tests.unit.test_report_lists import FILLERS, RUN, seed_run

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def conn(request, tmp_path_factory):
    """One seeded warehouse on each database for the whole module: its tests only read it."""
    with warehouse_database(request.param, tmp_path_factory.mktemp("report_pages")) as url:
        eng = create(url)
        migrate(eng)
        with eng.begin() as c:
            seed_run(c)
            yield c
        eng.dispose()


@pytest.mark.parametrize(("query", "targets", "sources"), [
    (ReportQuery(entity="task"), [(None, "pending")], []),  # a create a later run sent: new, for this run
    (ReportQuery(side="ghl"), [("g-dana", "sent"), ("g-lee", "pending")], ["g-kim"]),
    (ReportQuery(status="planned"), [("g-lee", "pending"), (None, "pending")], []),
    (ReportQuery(status="failed"), [(None, "failed")], []),
    (ReportQuery(rule="email_format"), [], ["a-zoe", "a-max"]),
    (ReportQuery(q="DANA.SMITH@example.org"), [("g-dana", "sent")], []),
    (ReportQuery(q="lee PARK"), [("g-lee", "pending")], []),
    (ReportQuery(q="José"), [(None, "failed")], []),
    (ReportQuery(q="a-lee"), [("g-lee", "pending")], []),
    (ReportQuery(q="zoë"), [], ["a-zoe"]),
    (ReportQuery(q="MAX@@"), [], ["a-max"]),
    (ReportQuery(q="50%_"), [], []),
])
def test_each_filter_and_search_lists_the_same_rows_on_both_databases(conn, query, targets, sources):
    report = build_report(conn, profile_by_name("gymdesk"), RUN, query)
    assert [(w["target_id"], w["status"]) for w in report["writes"]] == targets
    assert [q["source_id"] for q in report["quarantine"]] == sources
    assert report["listed"]["writes"]["total"] == len(targets) and report["listed"]["writes"]["all"] == FILLERS + 4


def test_pages_and_counts_are_the_same_on_both_databases(conn):
    profile = profile_by_name("gymdesk")
    full = build_report(conn, profile, RUN)
    last = build_report(conn, profile, RUN, ReportQuery(page=99, per_page=50))
    assert last["listed"]["writes"] == {"total": 124, "page": 3, "pages": 3, "per_page": 50, "first": 101,
                                        "last": 124, "all": 124}
    assert last["writes"] == full["writes"][100:]
    assert {k: v for k, v in last.items() if k not in ("writes", "quarantine", "listed")} \
        == {k: v for k, v in full.items() if k not in ("writes", "quarantine", "listed")}
    assert full["sides"]["app"]["updated"] == FILLERS and full["sides"]["app"]["failed"] == 1
    assert full["entities"]["contact"]["sent_to_app"] == FILLERS and full["quarantined_by_rule"] == {
        "email_format": 2, "phone_format": 1}

"""The console's index at 1,000 profiles (issue 26): one profile file with 1,000 GHL locations (two per
GHL connection) and an agency profile whose book holds a syncing location, one waiting for its app
connection and one uninstalled; a user who may read all but one of the DAGs; runs and review
candidates in a real warehouse (SQLite and PostgreSQL). The index is paged (page 2 shows the next 50, counted right),
searched (by profile name, by connection), grouped by location (the two profiles of a connection
under one heading), and each shown profile's newest run and review count are its own: run ids repeat
across profiles, and the page reads them for all its profiles at once. The agency's locations that do
not sync are rows under their location's heading, found by a search like any profile."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape

import pytest
import sqlalchemy as sa

from crm_sync.profile import load_profile, per_location
from crm_sync.warehouse.tables import agency_location, review_candidate, review_decision

from bench.console_index import located_profiles
from bench.console_runs import seed
from tests.conftest import warehouse_database

pytestmark = [pytest.mark.integration]
LOCATIONS = 1000
HIDDEN = "ghl_gymdesk_l0007"  # the user may not read this DAG
SEEDED = range(40, 110)  # profiles with a run: the end of page 1 and all of page 2
REVIEWED = "gymdesk__l0060"
ROWS = LOCATIONS - 1 + 3  # the readable located profiles, the agency's syncing location and its two that do not
AGENCY = """
agency:
  conn_id: ghl_agency
  app_conn_id: gymdesk_{location_id}
"""
DISCOVER = "ghl_agency_discover"  # the agency's discovery DAG: who may read it sees the agency's book
READS: dict[str, set[str]] = {}  # a test's own readable DAG ids ("only"), instead of the fixture's


def book_row(location_id: str, name: str, *, ready: bool = True, uninstalled_at: datetime | None = None) -> dict:
    """A row of agency_location as discovery writes it."""
    seen = datetime(2026, 11, 1, tzinfo=UTC)
    return {"profile": "agency", "location_id": location_id, "key": location_id.lower(), "name": name,
            "installed": uninstalled_at is None, "installed_at": seen, "first_seen_at": seen, "last_seen_at": seen,
            "uninstalled_at": uninstalled_at, "app_conn_id": f"gymdesk_{location_id}", "app_conn_ready": ready,
            "checked_at": seen}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def console(request, tmp_path_factory):
    """The real app on a seeded warehouse, with Airflow's login and DAG permissions stood in for."""
    from airflow.api_fastapi import app as airflow_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from crm_sync import profile as profile_module
    from crm_sync.warehouse.db import create, engine, migrate
    from crm_sync.web import security
    from crm_sync.web.app import create_app

    folder = tmp_path_factory.mktemp("index")
    profiles = located_profiles(folder / "profiles", LOCATIONS)
    gymdesk = (profiles / "gymdesk.yaml").read_text().split("\nlocations:\n")[0]
    (profiles / "agency.yaml").write_text(gymdesk.replace("name: gymdesk\n", "name: agency\n", 1)
                                          .replace("dag_id: ghl_gymdesk\n", "dag_id: ghl_agency\n", 1) + AGENCY)
    every = {p.name: p for p in per_location(load_profile(profiles / "gymdesk.yaml"))}
    assert len(every) == LOCATIONS
    with warehouse_database(request.param, folder) as url, pytest.MonkeyPatch.context() as patch:
        patch.setenv("WAREHOUSE_URL", url)
        patch.setenv("CRM_SYNC_HOME", str(folder / "home"))  # where read_book keeps its snapshot
        patch.setattr(profile_module, "PROFILES_DIR", profiles)
        engine.cache_clear()
        warehouse = create(url)
        migrate(warehouse)
        with warehouse.begin() as conn:
            for n in SEEDED:  # the same run ids in every profile; a different number of writes in each
                seed(conn, every[f"gymdesk__l{n:04d}"], 2, landed=5, writes=2 + n % 7)
            conn.execute(sa.insert(review_candidate), [
                {"profile": REVIEWED, "ghl_id": g, "app_id": a, "reason": "by email, another first name",
                 "run_id": "seed"} for g, a in (("g1", "a1"), ("g1", "a2"), ("g2", "a3"), ("g3", "a4"))])
            conn.execute(sa.insert(agency_location), [
                book_row("LOCZOE", "Zoë's Gym"), book_row("LOCWAIT", "Waiting Gym", ready=False),
                book_row("LOCGONE", "Gone Gym", uninstalled_at=datetime(2026, 11, 20, 8, tzinfo=UTC))])
            conn.execute(sa.insert(review_decision), [{"profile": REVIEWED, "ghl_id": "g3", "app_id": "a4",
                                                       "decision": "apart", "decided_by": "ops",
                                                       "decided_at": datetime.now(UTC)}])

        granted = {p.dag_id for p in every.values()} - {HIDDEN} | {"ghl_agency_loczoe", DISCOVER}

        class ReadsAllButOne:
            def get_authorized_dag_ids(self, user, method):
                return set(READS.get("only", granted))

        patch.setattr(airflow_app, "get_auth_manager", ReadsAllButOne)
        app = create_app()
        app.dependency_overrides.update({depends.dependency: lambda: None for depends in security.LOGGED_IN})
        app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="viewer", role="viewer")
        yield TestClient(app), every, warehouse
        engine.cache_clear()
        warehouse.dispose()


def listed(page: str) -> list[str]:
    """The DAG ids of the profile rows, in order."""
    return re.findall(r'<tr class="profile"><td>[^<]*</td><td><a href="[^"]*">([^<]+)</a>', page)


def headings(page: str) -> dict[str, list[str]]:
    """Each heading's place and the DAGs under it."""
    found = re.findall(r'<tbody class="place" data-place="([^"]+)">(.*?)</tbody>', page, re.S)
    return {place: listed(body) for place, body in found}


def pager(page: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", re.search(r'<p class="pager" id="index-pager">(.*?)</p>', page, re.S)[1]))


def test_pages_of_50_in_location_order_the_next_page_showing_the_next_ones(console):
    client, every, _ = console
    first, second = client.get("/").text, client.get("/", params={"page": 2}).text
    readable = sorted(f"ghl_gymdesk_l{n:04d}" for n in range(LOCATIONS) if f"ghl_gymdesk_l{n:04d}" != HIDDEN)
    assert listed(first) == readable[:50] and listed(second) == readable[50:100]
    assert HIDDEN not in first and HIDDEN not in client.get("/", params={"q": "l0007"}).text
    assert pager(first).startswith("1-50 of 1,002 profiles and locations, page 1 of 21")
    assert pager(second).startswith("51-100 of 1,002 profiles and locations, page 2 of 21")
    assert 'href="?page=3" rel="next"' in second and 'href="?" rel="prev"' in second  # page 1 is the bare index
    seven = client.get("/", params={"page": 2, "per_page": 7}).text  # another page size, kept in the links
    assert listed(seven) == readable[7:14] and 'href="?page=3&amp;per_page=7" rel="next"' in seven
    last = client.get("/", params={"page": 99}).text  # past the end: the last page
    assert pager(last).startswith("1,001-1,002 of 1,002") and listed(last) == ["ghl_agency_loczoe"]


def test_an_agency_s_locations_that_do_not_sync_say_why_under_their_location(console):
    client, _, _ = console
    last = client.get("/", params={"page": 21}).text
    assert headings(last) == {"LOCWAIT": [], "LOCZOE": ["ghl_agency_loczoe"]}
    assert re.search(r'id="place-LOCZOE">GHL location <a [^>]*>LOCZOE</a> Zoë&#39;s Gym', last)
    waiting = re.search(r'<tbody class="place" data-place="LOCWAIT">.*?</tbody>', last, re.S)[0]
    assert "agency: Waiting Gym</td><td colspan=\"7\">waiting for its app connection <code>gymdesk_LOCWAIT</code>" \
        in waiting
    gone = client.get("/", params={"show": "uninstalled"}).text
    assert list(headings(gone)) == ["LOCGONE"] and "uninstalled on 2026-11-20, no longer syncing" in gone
    assert pager(gone).startswith("1-1 of 1 profiles and locations (uninstalled)")
    assert headings(client.get("/", params={"q": "ZOE'S"}).text) == {"LOCZOE": ["ghl_agency_loczoe"]}  # by name
    assert list(headings(client.get("/", params={"q": "locwait"}).text)) == ["LOCWAIT"]  # by location id
    assert 'data-place="LOCWAIT"' in client.get("/", params={"show": "waiting"}).text


@pytest.mark.parametrize("readable", [{"ghl_agency_loczoe"}, {"ghl_agency_x", "ghl_agency_discover_x"}],
                         ids=["one-location", "look-alike"])
def test_an_agency_s_book_is_shown_only_to_who_may_read_its_discovery_dag(console, monkeypatch, readable):
    """A sub-account user who may read their own location's DAG, or one who may read DAGs whose ids
    merely start like the agency's, sees no sibling waiting for its app connection nor uninstalled."""
    client, _, _ = console
    monkeypatch.setitem(READS, "only", readable)
    for show in ("", "waiting", "uninstalled"):
        page = client.get("/", params={"show": show}).text
        assert "LOCWAIT" not in page and "LOCGONE" not in page and "Waiting Gym" not in page, show
    mine = client.get("/").text
    assert headings(mine) == ({"LOCZOE": ["ghl_agency_loczoe"]} if "ghl_agency_loczoe" in readable else {})


def test_each_shown_profile_has_its_own_newest_run_and_review_count(console):
    from crm_sync import review
    from crm_sync.pipeline.run_list import list_runs

    client, every, warehouse = console
    second = client.get("/", params={"page": 2}).text
    rows = dict(re.findall(r'<tr class="profile"><td>([^<]+)</td>(.*?)</tr>', second, re.S))
    with warehouse.connect() as conn:
        for name in (f"gymdesk__l{n:04d}" for n in range(51, 101)):
            newest = list_runs(conn, every[name], limit=1)  # one profile at a time, as the index read it before
            cells = rows[name]
            if newest:
                assert f">{newest[0]['run_id']}</a>" in cells and f"<td>{newest[0]['writes_sent']}</td>" in cells, name
            else:
                assert "no run yet" in cells, name
            assert f">{len(review.pending(conn, every[name]))} waiting</a>" in cells, name
    sent = {re.search(r"<td>(\d+)</td>", rows[f"gymdesk__l{n:04d}"])[1] for n in range(60, 67)}
    assert len(sent) > 1  # each profile's own run, not one run's counts for all
    assert ">2 waiting</a>" in rows[REVIEWED]  # two groups open, the third decided
    assert second.count('<svg class="chart" role="img"') == 2 * len([n for n in SEEDED if 51 <= n <= 100])
    gauges = re.findall(r'<figcaption id="budget-\d+-title">GHL location (\S+)', second)
    assert gauges == [f"ghl_c{n:04d}" for n in range(25, 51)]  # the page's locations alone


def test_search_finds_one_profile_by_name_and_a_location_s_two_by_connection(console):
    client, _, _ = console
    one = client.get("/", params={"q": "  GYMDESK__L0777 "}).text
    assert listed(one) == ["ghl_gymdesk_l0777"] and pager(one).startswith("1-1 of 1 profiles and locations matching")
    by_connection = client.get("/", params={"q": "ghl_c0388"}).text
    assert headings(by_connection) == {"ghl_c0388": ["ghl_gymdesk_l0776", "ghl_gymdesk_l0777"]}
    assert 'value="ghl_c0388"' in by_connection  # the search box keeps what was searched
    nothing = client.get("/", params={"q": "no such profile"}).text
    assert listed(nothing) == [] and 'id="none"' in nothing


def test_profiles_of_one_location_stand_under_one_heading_and_its_link_shows_it_alone(console):
    client, _, _ = console
    first = client.get("/").text
    groups = headings(first)
    assert len(groups) == 26 and groups["ghl_c0003"] == ["ghl_gymdesk_l0006"]  # its other DAG is hidden
    assert all(dags == [f"ghl_gymdesk_l{2 * int(place[-4:]) + k:04d}" for k in (0, 1)]
               for place, dags in groups.items() if place not in ("ghl_c0003", "ghl_c0025"))
    assert groups["ghl_c0025"] == ["ghl_gymdesk_l0050"] and "(continued)" not in first  # l0051 on page 2
    second = client.get("/", params={"page": 2}).text
    assert list(headings(second).items())[0] == ("ghl_c0025", ["ghl_gymdesk_l0051"])
    assert re.search(r'id="place-ghl_c0025">.*?\(continued\)', second)
    assert '<a href="?location=ghl_c0004">ghl_c0004</a>' in first
    alone = client.get("/", params={"location": "ghl_c0004"}).text
    assert headings(alone) == {"ghl_c0004": ["ghl_gymdesk_l0008", "ghl_gymdesk_l0009"]}
    kept = client.get("/", params={"location": "ghl_c0004", "q": "l0009"}).text  # filters combine, in the URL
    assert listed(kept) == ["ghl_gymdesk_l0009"] and 'name="location" value="ghl_c0004"' in kept


def test_a_page_reads_the_warehouse_in_the_same_few_queries_whatever_its_size(console):
    from crm_sync.warehouse.db import engine

    client, _, _ = console
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    client.get("/")  # the pool's connection made, before counting
    sa.event.listen(engine(), "before_cursor_execute", seen)
    try:
        counted = {}
        for size in (5, 50, 200):  # page 2 of each: profiles with runs, review candidates, today's calls
            statements.clear()
            assert client.get("/", params={"page": 2, "per_page": size}).status_code == 200
            counted[size] = len(statements)
    finally:
        sa.event.remove(engine(), "before_cursor_execute", seen)
    # the agency's book, the page's runs (two), its review counts, its locations' calls today
    assert counted[5] == counted[50] == counted[200] == 5, counted


def test_an_installed_location_outside_agency_only_is_listed_as_not_in_it(console):
    """agency.only limits syncing, not listing: the agency's other installed locations show why."""
    client, _, _ = console
    from crm_sync import profile as profile_module

    path = profile_module.PROFILES_DIR / "agency.yaml"
    before = path.read_text()
    path.write_text(before.replace("  app_conn_id: gymdesk_{location_id}\n",
                                   "  app_conn_id: gymdesk_{location_id}\n  only: [LOCWAIT]\n", 1))
    try:
        page = client.get("/", params={"show": "excluded"}).text
        assert list(headings(page)) == ["LOCZOE"] and headings(page)["LOCZOE"] == []  # no DAG: it does not sync
        assert "agency: Zoë&#39;s Gym</td><td colspan=\"7\">not in agency.only, not syncing" in page
        assert 'data-place="LOCWAIT"' in client.get("/", params={"show": "waiting"}).text
    finally:
        path.write_text(before)

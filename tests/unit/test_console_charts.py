"""The console's pictures: each profile's last runs and each GHL location's calls today, drawn as
inline SVG on the index (no script, nothing fetched from elsewhere), with their numbers on the
picture, in its description and in a table."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crm_sync.pipeline.context import RunContext, log_step
from crm_sync.pipeline.run_list import list_runs
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.tables import run_log
from crm_sync.web import charts, security, services
from crm_sync.web.app import create_app

from bench.console_runs import seed

DAG = "ghl_gymdesk"
RUNS = 12  # more than a chart shows


@pytest.fixture
def client(sqlite_warehouse, monkeypatch):
    from airflow.api_fastapi import app as airflow_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    class ReadsTwoDags:
        def get_authorized_dag_ids(self, user, method):
            return {DAG, "ghl_gymflow"}

    monkeypatch.setattr(airflow_app, "get_auth_manager", ReadsTwoDags)
    app = create_app()
    for depends in (*security.LOGGED_IN, *security.READ_DAG):
        app.dependency_overrides[depends.dependency] = lambda: None
    app.dependency_overrides[security.may_read_task_logs] = lambda: True  # an admin
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="viewer", role="viewer")
    return TestClient(app)


@pytest.fixture
def runs(sqlite_warehouse) -> list[str]:
    with sqlite_warehouse.begin() as conn:
        return seed(conn, profile_by_name("gymdesk"), RUNS, landed=5, writes=4)


def figures(page: str) -> dict[str, ElementTree.Element]:
    """Every picture of the page by its id, parsed as XML (so it is well formed)."""
    found = {}
    for svg in re.findall(r"<svg .*?</svg>", page, re.S):
        root = ElementTree.fromstring(svg)
        found[root.get("aria-labelledby").split()[0].removesuffix("-title")] = root
    return found


def texts(svg: ElementTree.Element, tag: str) -> list[str]:
    return ["".join(e.itertext()) for e in svg.iter(f"{{http://www.w3.org/2000/svg}}{tag}")]


def test_each_profile_shows_its_last_runs_writes_quarantine_and_api_calls(client, runs, sqlite_warehouse):
    page = client.get("/").text
    pictures = figures(page)
    with sqlite_warehouse.connect() as conn:
        listed = list_runs(conn, profile_by_name("gymdesk"), limit=charts.RUNS_CHARTED)[::-1]  # oldest first
    assert len(listed) == charts.RUNS_CHARTED < RUNS

    writes, calls = pictures[f"writes-{DAG}"], pictures[f"calls-{DAG}"]
    for svg in (writes, calls):
        assert svg.get("role") == "img" and texts(svg, "title")[0] and texts(svg, "desc")[0]
    bars = [t for t in texts(writes, "title")[1:]]
    assert len(bars) == 3 * charts.RUNS_CHARTED
    for i, run in enumerate(listed):
        ghl, app = (run["sides"][side]["created"] + run["sides"][side]["updated"] for side in ("ghl", "app"))
        assert bars[3 * i: 3 * i + 3] == [f"{run['title']}: {ghl} written to GHL",
                                          f"{run['title']}: {app} written to the app",
                                          f"{run['title']}: {run['quarantined']} quarantined"]
        assert texts(calls, "title")[1 + 2 * i: 3 + 2 * i] == [
            f"{run['title']}: {run['sides'][side]['api_calls']} {side if side == 'app' else 'GHL'} API calls"
            for side in ("ghl", "app")]
    # the numbers over the bars, in order, and the newest run's in the description
    values = [str(v) for run in listed for v in (run["sides"]["ghl"]["api_calls"], run["sides"]["app"]["api_calls"])]
    assert [t for t in texts(calls, "text") if t in values][-len(values):] == values
    newest = listed[-1]
    assert f"{newest['sides']['ghl']['api_calls']:,} GHL API calls" in texts(calls, "desc")[0]
    assert any(run["sides"]["ghl"]["api_calls"] != listed[0]["sides"]["ghl"]["api_calls"] for run in listed)
    # and in a table, newest first
    table = page[page.index(f'id="calls-{DAG}-title"'):].split("</table>")[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(\d+)</td><td>(\d+)</td></tr>", table)
    assert rows == [(r["title"], str(r["sides"]["ghl"]["api_calls"]), str(r["sides"]["app"]["api_calls"]))
                    for r in reversed(listed)]
    assert 'id="runs-ghl_gymflow"' not in page and "no run yet" in page.split("ghl_gymflow")[2]  # no picture


def test_the_day_s_ghl_calls_per_location_stand_against_its_200000(client, runs, sqlite_warehouse):
    with sqlite_warehouse.begin() as conn:  # the oldest run ended yesterday: not today's
        conn.execute(sa.update(run_log).where(run_log.c.run_id == runs[0])
                     .values(finished_at=datetime.now(UTC) - timedelta(days=1)))
    # seed: extract reads 3 + i % 5 GHL calls, a run past validate loads 4 // 2 to GHL
    today = sum(3 + i % 5 + (2 if i % 10 != 9 else 0) for i in range(1, RUNS))
    gauge = figures(client.get("/").text)["budget-1"]
    said = f"{today:,} of 200,000 calls today ({today / 200_000:.2%} used)"
    assert said in texts(gauge, "text") and said in texts(gauge, "desc")[0]
    assert "GHL location ghl_default" in texts(gauge, "desc")[0] and "runs stop 2,000 calls before" in texts(gauge, "desc")[0]
    rects = {r.get("class"): float(r.get("width")) for r in gauge.iter("{http://www.w3.org/2000/svg}rect")}
    assert rects["ghl"] == max(round(480 * today / 200_000, 1), 1) and rects["spare"] == 480
    stop = next(gauge.iter("{http://www.w3.org/2000/svg}line"))
    assert float(stop.get("x1")) == round(480 * 198_000 / 200_000, 1)


def test_locations_are_told_apart_by_their_connection(sqlite_warehouse, runs):
    gymdesk, gymflow = profile_by_name("gymdesk"), profile_by_name("gymflow")
    other = gymflow.model_copy(update={"ghl": gymflow.ghl.model_copy(update={"conn_id": "ghl_other",
                                                                           "location_id": "loc2"})})
    with sqlite_warehouse.connect() as conn:
        places = services.ghl_calls_today(conn, [gymdesk, other])
    assert [(p["conn_id"], p["location_id"], p["profiles"]) for p in places] == [
        ("ghl_default", gymdesk.ghl.location_id, [DAG]), ("ghl_other", "loc2", ["ghl_gymflow"])]
    assert places[0]["calls"] > 0 and places[1]["calls"] == 0
    assert charts.budget_gauge(places[1])["used"] == 0


def test_a_location_counts_the_calls_of_profiles_the_user_may_not_read_without_naming_them(sqlite_warehouse, runs):
    gymdesk, gymflow = profile_by_name("gymdesk"), profile_by_name("gymflow")
    assert gymdesk.ghl.conn_id == gymflow.ghl.conn_id  # one location, one budget
    with sqlite_warehouse.begin() as conn:
        alone = services.ghl_calls_today(conn, [gymdesk])[0]["calls"]
        ctx = RunContext(gymflow, "manual__flow", "manual", None, None)
        log_step(conn, ctx, "extract", {"api": {"calls": 3}}, side="ghl")
        log_step(conn, ctx, "extract", {"api": {"calls": 50}}, side="app")  # the app's: not GHL's budget
        log_step(conn, ctx, "load", {"api": {"ghl": {"calls": 4}, "app": {"calls": 60}}})
        shared = services.ghl_calls_today(conn, [gymdesk])
    assert [(p["profiles"], p["calls"]) for p in shared] == [([DAG], alone + 3 + 4)]


def test_the_pictures_need_no_script_and_nothing_from_elsewhere(client, runs):
    drawn = "".join(re.findall(r"<figure>.*?</figure>", client.get("/").text, re.S))
    assert drawn.count("<svg ") == 3  # the location's calls, the profile's writes and its API calls
    assert "<script" not in drawn and "href" not in drawn and "url(" not in drawn
    assert re.findall(r"https?://[^\s\"]+", drawn) == ["http://www.w3.org/2000/svg"] * 3


@pytest.mark.parametrize(("n", "shown"), [(0, "0"), (950, "950"), (1000, "1k"), (12_345, "12.3k"),
                                          (200_000, "200k"), (1_250_000, "1.2M")])
def test_numbers_over_bars_are_short(n, shown):
    assert charts.compact(n) == shown


def test_the_axis_tops_out_at_a_round_number_above_the_highest_bar():
    chart = charts.bar_chart("t", charts.CALLS, [{"label": "a", "name": "a", "values": {"ghl": 37, "app": 12}}])
    assert [t["text"] for t in chart.ticks] == ["0", "25", "50"]
    tallest = max(chart.bars, key=lambda b: b["h"])
    assert tallest["value"] == 37 and tallest["h"] == round((charts.HEIGHT - charts.TOP - charts.BOTTOM) * 37 / 50, 1)

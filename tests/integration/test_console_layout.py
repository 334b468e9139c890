"""The runs list and a report, as a browser lays them out: the runs list of a profile with long run
titles, a dry run, a running run and a failed one with a long error fits a 1,400 px window (GHL and
the app as column groups), light and dark as the system asks (headless Chromium, real pages)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from crm_sync.pipeline.context import RunContext, log_step
from crm_sync.pipeline.report import build_report
from crm_sync.pipeline.report_pages import STATUSES, ReportQuery
from crm_sync.pipeline.run_failed import record_failure
from crm_sync.pipeline.run_list import list_runs
from crm_sync.profile import profile_by_name
from crm_sync.web.pages import TEMPLATES

from bench.console_runs import seed

pytestmark = [pytest.mark.integration]
WIDTH = 1400


@pytest.fixture
def browser():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromium-driver are needed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--window-size={WIDTH},1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def _page(template: str, **context) -> str:
    from crm_sync.pipeline.report import environment

    return environment(TEMPLATES).get_template(template).render(base="/crm-sync", **context)


def test_the_runs_list_fits_1400_px_with_the_sides_as_column_groups(sqlite_warehouse, tmp_path, browser):
    profile = profile_by_name("gymdesk")
    with sqlite_warehouse.begin() as conn:
        seed(conn, profile, 30, landed=6, writes=7)
        start = datetime(2026, 1, 3, tzinfo=UTC)
        failed = RunContext(profile, f"backfill__{start.isoformat()}", "backfill", start, start + timedelta(days=1))
        running = RunContext(profile, "manual__2026-12-03T12:00:00.123456+00:00", "manual", dry_run=True)
        for ctx in (failed, running):
            log_step(conn, ctx, "extract", {"extracted": 123456, "unchanged": 120000, "api": {"calls": 4321}},
                     side="ghl")
    context = {"dag_run": SimpleNamespace(run_id=failed.run_id, run_type="backfill"), "params": {},
               "ti": SimpleNamespace(task_id="extract_gymdesk", try_number=1, max_tries=2)}
    from crm_sync.paging import PagingRunaway

    record_failure(failed, context, PagingRunaway(
        "Gymdesk contacts: page 2 brought no record not already seen: the server ignores the position; "
        "check app.entities.contact.pagination in the profile (its style, its size, its cursor) " * 3))
    with sqlite_warehouse.connect() as conn:
        runs = list_runs(conn, profile)
        report = build_report(conn, profile, failed.run_id)
    assert {r["state"] for r in runs} == {"success", "failed", "running"}
    page = tmp_path / "runs.html"
    shown = {"first": 1, "last": len(runs), "total": len(runs), "newer": None, "older": None}
    page.write_text(_page("runs.html.j2", profile=profile, runs=runs, zone=profile.zone, shown=shown, state="",
                          dry_run="", states=("running", "failed", "success"), show_errors=True))
    report_page = tmp_path / "run.html"
    report_page.write_text(_page("run.html.j2", r=report, zone=profile.zone, query=ReportQuery(),
                                 statuses=list(STATUSES)))

    browser.get(page.as_uri())
    browser.save_screenshot(str(tmp_path / "runs.png"))
    width = browser.execute_script("return document.documentElement.scrollWidth")
    table = browser.execute_script("return document.getElementById('runs').getBoundingClientRect().right")
    assert width <= WIDTH and table <= WIDTH, f"the runs list is {width} px wide (table to {table} px)"
    groups = browser.execute_script(
        "return [...document.querySelectorAll('#runs th.group')].map(th => [th.textContent, th.colSpan])")
    assert groups == [["GHL", 8], ["app (gymdesk)", 8]]
    font = browser.execute_script("return getComputedStyle(document.body).fontFamily")
    assert font.startswith("Inter")
    background = "return getComputedStyle(document.body).backgroundColor"
    light = browser.execute_script(background)
    dark = {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", dark)
    assert light == "rgb(255, 255, 255)"
    assert browser.execute_script(background) == "oklch(0.11 0.025 251)"  # Airflow's gray.950
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    browser.get(report_page.as_uri())
    browser.save_screenshot(str(tmp_path / "run.png"))
    assert "extract_gymdesk failed" in browser.find_element("id", "failed-task").text
    assert browser.execute_script("return document.documentElement.scrollWidth") <= WIDTH
    link = browser.execute_script("return document.querySelector('#failed-task a').getAttribute('href')")
    assert link.startswith("/dags/ghl_gymdesk/runs/backfill__2026-01-03T00%3A00%3A00%2B00%3A00/tasks/extract_gymdesk")

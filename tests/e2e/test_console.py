"""`make ui` as a user meets it: a real api-server, logged in through a real headless Chromium.

One `make ui` (it reuses the demo `make test` left in .demo/, else runs it first; shared with
tests/e2e/test_ui_instant_sync.py through the ``demo_ui`` fixture) serves every check: the one `ui:` line and its report URL behind `POST /auth/token`, the login, the crm-sync
entry, a run's data-quality results and quarantined rows, the tab on a DAG run, a review decision
made and undone, the validate log reading clean, and everything stopped on SIGTERM.
Screenshots go to .demo/ui/screenshots/ (docs/console.png is one of them).
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import SHOTS, sign_in  # its browser fixture too

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def make_ui(demo_ui):
    """`make ui` until its `ui:` line (shared with the other `make ui` tests; SIGTERM after the last)."""
    return demo_ui.ui


def shown(browser, element_id: str, words: str, timeout: float = 20) -> str:
    """The element's text once it says ``words`` (a form's POST answers with a new page: wait for it)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def text(driver):
        try:
            found = driver.find_element(By.ID, element_id).text
        except (NoSuchElementException, StaleElementReferenceException):
            return False
        return found if words in found else False

    return WebDriverWait(browser, timeout).until(text, f"#{element_id} never said {words!r}")


def test_make_ui_serves_the_console_to_a_logged_in_browser(make_ui, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, user, password, report = make_ui
    SHOTS.mkdir(parents=True, exist_ok=True)
    # the report URL answers a logged-in request with the newest run's report itself, and nobody else
    assert httpx.get(report).status_code == 401
    token = httpx.post(f"{url}/auth/token", json={"username": user, "password": password}).json()["access_token"]
    newest = httpx.get(report, headers={"Authorization": f"Bearer {token}"}).json()
    assert newest["dag_id"] == "ghl_gymdesk" and newest["sides"]["ghl"]["extracted"] > 0
    assert newest["trigger"]["dag_id"] == "ghl_gymdesk" and not newest["trigger"]["fast_lane"]  # the run's own DAG
    assert token not in json.dumps(newest) and password not in json.dumps(newest)

    sign_in(browser, url, user, password)  # Airflow's login

    # the crm-sync entry in Airflow's navigation: the console inside the UI
    browser.find_element(By.XPATH, "//a[contains(@href, 'plugin/crm-sync')]").click()
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    assert "crm-sync profiles" in browser.find_element(By.TAG_NAME, "h1").text
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")  # the last runs and today's GHL calls, no CDN
    assert len(charts) >= 2 and all(c.find_element(By.TAG_NAME, "title").get_attribute("textContent") for c in charts)
    # the index's search box and its pages (two profiles a page, so that the demo's profiles make pages)
    search = browser.find_element(By.CSS_SELECTOR, "#index-search input[name=q]")
    search.send_keys("GYMDESK")
    search.submit()
    assert "1-1 of 1 profiles and locations matching the search" in shown(browser, "index-pager", "matching")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#profiles tr.profile td:nth-child(2) a")] == [
        "ghl_gymdesk"]
    browser.execute_script("location.search = '?per_page=2'")
    total = re.search(r"1-2 of (\d+)", shown(browser, "index-pager", "1-2 of"))[1]
    browser.find_element(By.CSS_SELECTOR, "#index-pager a[rel=next]").click()
    assert f"3-4 of {total}" in shown(browser, "index-pager", "3-4 of"), total
    browser.execute_script("location.search = ''")
    shown(browser, "index-pager", "1-")
    browser.find_element(By.LINK_TEXT, "ghl_gymdesk").click()
    runs = browser.find_elements(By.CSS_SELECTOR, "table tr td:first-child a")
    assert len(runs) >= 4  # three backfilled intervals and the rerun, newest first
    groups = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "table tr:first-child th[colspan]")]
    assert any("GHL" in g for g in groups) and any("app" in g.lower() for g in groups), groups
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1400  # no side off screen
    browser.switch_to.default_content()
    browser.save_screenshot(str(SHOTS / "runs.png"))
    # a run's "grid" link opens that DAG run in the UI itself, not a second UI inside the frame
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    browser.find_element(By.XPATH, "//a[normalize-space()='grid']").click()
    browser.switch_to.default_content()
    # (the newest run may be the fast lane's, when an instant-sync test ran first: its link names that DAG)
    WebDriverWait(browser, 20).until(lambda d: re.search(r"/dags/ghl_gymdesk(_fast)?/runs/", d.current_url)
                                     and "plugin/crm-sync" not in d.current_url, "the grid link did not open the run")
    WebDriverWait(browser, 20).until(lambda d: not d.find_elements(By.TAG_NAME, "iframe"),
                                     "the run's page still shows the console's frame")
    browser.save_screenshot(str(SHOTS / "grid-from-console.png"))

    # the first backfill run: its data-quality results and quarantined rows, from the DAG run's tab
    first = httpx.get(f"{url}/api/v2/dags/ghl_gymdesk/dagRuns", params={"run_type": "backfill", "order_by": "logical_date"},
                      headers={"Authorization": f"Bearer {token}"}).json()["dag_runs"][0]["dag_run_id"]
    browser.get(f"{url}/dags/ghl_gymdesk/runs/{quote(first, safe='')}")
    browser.find_element(By.XPATH, "//a[normalize-space()='crm-sync report'] | //button[normalize-space()='crm-sync report']").click()
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "Data quality" in page and "Great Expectations validated" in page and "(threshold 5%)" in page
    assert "staging_contact email format expect_column_values_to_match_regex(email) passed" in page
    assert "broken.email@@example" in page  # a quarantined row's detail, with its rule
    assert "email_format" in page and "ambiguous_match" in page
    assert browser.find_element(By.ID, "run-state").text == "success"
    assert browser.find_element(By.ID, "trigger").text.startswith("Trigger: backfill (1 day)")  # a daily interval
    sums = re.findall(r"read (\d+) = (\d+) unchanged \+ (\d+) changed \+ (\d+) quarantined", page)
    assert len(sums) == 2 and all(int(n) == int(a) + int(b) + int(c) for n, a, b, c in sums), sums  # they add up
    for log in browser.find_elements(By.XPATH, "//p[starts-with(normalize-space(), 'Task logs:')]/a"):
        assert f"/dags/ghl_gymdesk/runs/{quote(first, safe='')}/tasks/" in log.get_attribute("href")
    written = httpx.get(f"{url}/crm-sync/api/dags/ghl_gymdesk/runs/{quote(first, safe='')}",
                        headers={"Authorization": f"Bearer {token}"}).json()["writes"]
    one = next(w for w in written if w.get("target_id"))["target_id"]
    search = browser.find_element(By.NAME, "q")
    search.send_keys(one)
    search.submit()
    assert "writes: 1-1 of 1" in shown(browser, "report-filters", "of 1"), one  # searched in the warehouse
    browser.switch_to.default_content()
    browser.save_screenshot(str(SHOTS / "run-tab.png"))
    browser.get(f"{url}/crm-sync/dags/ghl_gymdesk/runs/{quote(first, safe='')}")  # the link an alert carries
    assert "/plugin/crm-sync/crm-sync/dags/ghl_gymdesk/runs/" in browser.current_url  # shown inside the UI
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Sync report: gymdesk")
    report = browser.find_element(By.TAG_NAME, "body").text
    assert "Data quality" in report and "broken.email@@example" in report  # the same run, on its own page
    browser.switch_to.default_content()
    browser.save_screenshot(str(SHOTS / "report.png"))

    # the review queue: keep one ambiguous pair apart, see the decision, undo it
    browser.get(f"{url}/crm-sync/dags/ghl_gymdesk/review")
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    browser.save_screenshot(str(SHOTS / "review.png"))
    preview = browser.find_element(By.CSS_SELECTOR, "table.link-preview")  # what a link would write, field by field
    assert "first_name" in preview.text or "email" in preview.text, preview.text
    browser.find_element(By.XPATH, "//button[normalize-space()='keep apart']").click()
    said = shown(browser, "review-done", "kept apart")  # the page after the POST, not the one before it
    decision = browser.find_element(By.CSS_SELECTOR, "#decisions tr:nth-child(2)").text
    assert "apart" in decision and user in decision
    browser.find_element(By.XPATH, "//button[normalize-space()='undo']").click()
    assert "undone" in shown(browser, "review-done", "undone"), said

    # errors are console pages with a way back; a logged-out operator following a link logs in and lands on it
    missing = f"{url}/crm-sync/dags/ghl_gymdesk/runs/manual__nope"
    browser.get(missing)
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"
    assert browser.find_element(By.PARTIAL_LINK_TEXT, "the runs of ghl_gymdesk")
    browser.switch_to.default_content()
    browser.delete_all_cookies()
    browser.get(f"{url}/crm-sync/dags/ghl_gymdesk/review")
    WebDriverWait(browser, 20).until(lambda d: "/auth/login" in d.current_url, "a logged-out link did not ask for the login")
    sign_in(browser, browser.current_url, user, password)
    WebDriverWait(browser, 30).until(lambda d: "/plugin/crm-sync/crm-sync/dags/ghl_gymdesk/review" in d.current_url,
                                     f"the login did not bring the operator back: {browser.current_url}")

    # a clean run's validate log reads clean (no GX import lines, no progress bars at ERROR)
    logs = ROOT / ".demo" / "airflow" / "logs" / "dag_id=ghl_gymdesk"
    validate_logs = [p for p in logs.rglob("*.log") if "task_id=validate" in str(p)]
    assert validate_logs
    for log in validate_logs:
        events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        assert len(events) > 5, log
        assert not [e for e in events if e.get("level") == "error" or "Skipping registering" in str(e.get("event"))], log

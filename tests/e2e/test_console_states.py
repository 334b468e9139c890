"""A run's report as it happened, in a real browser inside the Airflow UI: a run still running says so
and which steps are done, a failed run names its failed task, shows the error and links its log, and
a dry run keeps its planned write "planned, not sent" after a later run sent it. A real api-server
serves the console over a warehouse seeded as the steps write it (the Airflow runs themselves are
tests/integration/test_report_truth.py's)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import OWN_SHOTS as SHOTS, USER, sign_in  # and its console fixture
from tests.unit.test_run_report import _extracted, _write

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # an api-server and Chromium: about a minute
DAG = "ghl_gymdesk"
RUNNING, FAILED = "manual__2026-12-03T09:00:00+00:00", "manual__2026-12-03T08:00:00+00:00"
DRY, REAL = "manual__2026-12-03T06:00:00+00:00", "manual__2026-12-03T07:00:00+00:00"


@pytest.fixture
def warehouse(tmp_path, monkeypatch) -> str:
    from crm_sync.paging import PagingRunaway
    from crm_sync.pipeline.context import RunContext, log_step
    from crm_sync.pipeline.run_failed import record_failure
    from crm_sync.profile import profile_by_name
    from crm_sync.warehouse import outbox as box
    from crm_sync.warehouse.db import engine
    from crm_sync.warehouse.tables import outbox, xref

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    monkeypatch.setenv("WAREHOUSE_URL", url)
    engine.cache_clear()
    profile = profile_by_name("gymdesk")
    with engine().begin() as conn:
        link = conn.execute(sa.insert(xref).returning(xref.c.id).values(
            profile=profile.name, entity="contact", ghl_id="ghl-1", app_id="app-1",
            updated_at=datetime.now(UTC))).scalar_one()
        for ctx in (RunContext(profile, DRY, "manual", dry_run=True), RunContext(profile, REAL, "manual")):
            _extracted(conn, ctx, "ghl", 0, 3)
            _extracted(conn, ctx, "app", 0, 3)
            for step in ("stage", "validate", "reconcile"):
                log_step(conn, ctx, step, {})
            box.queue(conn, [_write(ctx, link, "app", "key-1")], ctx.dry_run)
            (row,) = conn.execute(sa.select(outbox.c.id)).scalars()
            if ctx.dry_run:
                box.mark_dry_run(conn, [row])
            else:
                assert box.claim(conn, row, ctx.run_id)
                box.mark_sent(conn, row, datetime.now(UTC), "app-1")
            log_step(conn, ctx, "load", {"api": {"ghl": {}, "app": {"calls": 1}}})
            log_step(conn, ctx, "report", {"dry_run": ctx.dry_run, "generated_at": datetime.now(UTC).isoformat()})
        running = RunContext(profile, RUNNING, "manual", dry_run=True)
        _extracted(conn, running, "ghl", 0, 4)
        _extracted(conn, running, "app", 0, 2)
        log_step(conn, running, "stage", {"staged": 0})
    failing = {"dag_run": SimpleNamespace(run_id=FAILED, run_type="manual"), "params": {"dry_run": False},
               "ti": SimpleNamespace(task_id="extract_gymdesk", try_number=3, max_tries=2)}
    ctx = RunContext.from_airflow(profile.name, failing)
    with engine().begin() as conn:
        _extracted(conn, ctx, "ghl", 0, 5)
    record_failure(ctx, failing, PagingRunaway("Gymdesk contacts: page 2 brought no record not already seen"))
    engine().dispose()
    engine.cache_clear()
    return url


def report_text(browser, url: str, run_id: str, shot: str) -> str:
    """The run's report as the operator sees it: opened from a link, shown inside the Airflow UI."""
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/crm-sync/dags/{DAG}/runs/{quote(run_id, safe='')}")
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    text = browser.find_element(By.TAG_NAME, "body").text
    links = {a.text: a.get_attribute("href") for a in browser.find_elements(By.TAG_NAME, "a")}
    browser.switch_to.default_content()
    browser.save_screenshot(str(SHOTS / f"report-{shot}.png"))
    return text, links


def test_reports_say_running_failed_and_planned_as_it_happened(console, browser):
    import httpx
    from selenium.webdriver.common.by import By

    url, password = console
    # the console's JSON API is listed in the api-server's own OpenAPI, beside Airflow's REST API
    described = httpx.get(f"{url}/openapi.json", timeout=30).json()["paths"]
    assert {"/api/v2/dags", "/crm-sync/api/dags", "/crm-sync/api/dags/{dag_id}/runs"} <= set(described)
    SHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(browser, url, USER, password)

    text, _ = report_text(browser, url, RUNNING, "running")
    assert "The run is running" in text and "extract_ghl, extract_gymdesk, stage" in text
    assert "Dry run: yes" in text and "stopped" not in text and "No write was needed" not in text

    text, links = report_text(browser, url, FAILED, "failed")
    assert "extract_gymdesk" in text and "PagingRunaway: Gymdesk contacts: page 2 brought no record" in text
    assert "Bad share 0.0%" not in text
    log = f"/dags/{DAG}/runs/{quote(FAILED, safe='')}/tasks/extract_gymdesk"
    assert any(log in (href or "") for href in links.values()), links

    text, _ = report_text(browser, url, DRY, "dry-run")
    assert "Dry run: yes" in text and "planned, not sent" in text
    text, _ = report_text(browser, url, REAL, "sent")
    assert "Dry run: no" in text and "No write was needed" not in text

    browser.get(f"{url}/crm-sync/dags/{DAG}")
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    outcomes = {row.find_element(By.CSS_SELECTOR, "td:first-child a").text.split(" ")[0]:
                row.find_element(By.CSS_SELECTOR, "td.outcome").text
                for row in browser.find_elements(By.CSS_SELECTOR, "#runs tr") if row.find_elements(By.CSS_SELECTOR, "td.outcome")}
    assert outcomes[RUNNING].startswith("running") and outcomes[FAILED].startswith("failed"), outcomes
    assert "PagingRunaway" in outcomes[FAILED]  # an admin may read the task's log, so its error shows

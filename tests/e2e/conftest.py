"""What the e2e tests share: a headless Chromium (selenium; chromium and chromedriver from apt),
signing in to Airflow's UI with it as a person does, and an api-server serving the console over the
warehouse the test module's own ``warehouse`` fixture seeds."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.airflow_runner import free_port
from tests.conftest import ROOT, airflow_env

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1100")
SHOTS = ROOT / ".demo" / "ui" / "screenshots"
OWN_SHOTS = ROOT / ".screenshots"  # of the tests that run beside the demo's (which starts .demo/ afresh)
USER = "admin"


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromium-driver are needed (apt-get install chromium chromium-driver; .ci/run does)")
    options = Options()
    options.binary_location = shutil.which("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.implicitly_wait(20)
    yield driver
    driver.quit()


def sign_in(browser, url: str, user: str, password: str) -> None:
    """Airflow's login page, filled in and sent; returns once the UI has let the user in."""
    from selenium.webdriver.common.by import By

    browser.get(url)
    browser.find_element(By.NAME, "username").send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    deadline = time.monotonic() + 30
    while "/auth/login" in browser.current_url and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "/auth/login" not in browser.current_url, "the login did not go through"


@pytest.fixture
def console(airflow_home: Path, tmp_path, warehouse) -> Iterator[tuple[str, str]]:
    """An api-server (Airflow's UI, login and the plugin's console) on a free port: (its URL, the password)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = airflow_env(airflow_home, WAREHOUSE_URL=warehouse, AIRFLOW__API__BASE_URL=url,
                      AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
                      AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(tmp_path / "passwords.json"),
                      AIRFLOW__API_AUTH__JWT_SECRET="e2e-csrf-" + "s" * 40, AIRFLOW__API__SECRET_KEY="e2e-csrf-key")
    log = (tmp_path / "api-server.log").open("wb")
    server = subprocess.Popen(["airflow", "api-server", "-H", "127.0.0.1", "-p", str(port), "--apps", "core"],
                              env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            up = server.poll() is None and time.monotonic() < deadline
            assert up, (tmp_path / "api-server.log").read_text()[-3000:]
            time.sleep(0.3)
        yield url, json.loads((tmp_path / "passwords.json").read_text())[USER]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        log.close()

"""What the e2e tests share: a headless Chromium (selenium; chromium and chromedriver from apt), and
signing in to Airflow's UI with it as a person does."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.conftest import ROOT

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1100")
SHOTS = ROOT / ".demo" / "ui" / "screenshots"


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
    SHOTS.mkdir(parents=True, exist_ok=True)
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

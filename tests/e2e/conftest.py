"""What the e2e tests share: a headless Chromium (selenium; chromium and chromedriver from apt),
signing in to Airflow's UI with it as a person does, one `make ui` on the demo for every test that
asks for ``demo_ui``, and an api-server serving the console over the warehouse the test module's own
``warehouse`` fixture seeds."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.airflow_runner import free_port
from tests.conftest import ROOT, airflow_env, processes

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1100")
SHOTS = ROOT / ".demo" / "ui" / "screenshots"
OWN_SHOTS = ROOT / ".screenshots"  # of the tests that run beside the demo's (which starts .demo/ afresh)
USER = "admin"
UI_LINE = re.compile(r"^ui: url=(\S+) user=(\S+) password=(\S+) report=(\S+)$")
NEXT = pytest.StashKey()  # the test the worker runs after this one (None: the last)


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


def ui_processes() -> dict[int, str]:
    demo = str(ROOT / ".demo")
    return processes(f"AIRFLOW_HOME={demo}", in_arguments=demo)


class MakeUi:
    """`make ui` (its module, as the Makefile runs it), up until ``stop``: its ``ui:`` line's
    (url, user, password, report) and its ``try:`` command."""

    def __init__(self):
        if not (shutil.which("chromium") and shutil.which("chromedriver")):
            pytest.fail("chromium and chromium-driver are needed (apt-get install chromium chromium-driver; .ci/run does)")
        env = airflow_env(Path("/nonexistent"))
        env.pop("AIRFLOW_HOME")
        self.before = ui_processes()
        self.process = subprocess.Popen([sys.executable, "-m", "harness.ui", "--profile", "gymdesk", "--port", "0"],
                                        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        deadline = time.monotonic() + 900  # the demo runs first when .demo/ holds no finished one
        for line in self.process.stdout:
            lines.append(line.rstrip())
            if lines[-1].startswith("try: ") or time.monotonic() > deadline:
                break
        ui = next((m for m in map(UI_LINE.match, lines) if m), None)
        if not (ui and lines[-1].startswith("try: ")):
            self.process.kill()
            self.process.wait(30)
            pytest.fail("make ui printed no ui: line and try: line after it:\n" + "\n".join(lines[-40:]))
        self.ui, self.command = ui.groups(), lines[-1].removeprefix("try: ")

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM (it stops on it as on Ctrl-C): it exits 0 and leaves nothing of it running."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(120) == 0
        left = {pid: cmd for pid, cmd in ui_processes().items() if pid not in self.before}
        assert left == {}, "make ui left processes running"


@pytest.fixture(scope="session")
def _make_ui_holder() -> Iterator[list[MakeUi]]:
    holder: list[MakeUi] = []
    yield holder
    if holder and holder[0].running():
        holder[0].stop()


@pytest.fixture
def demo_ui(request, _make_ui_holder) -> Iterator[MakeUi]:
    """One `make ui` for the tests that use it one after another (pytest_collection_modifyitems puts
    them together): started by the first, stopped (and checked to stop cleanly) after the last, before
    any other test can start .demo/ afresh under it."""
    if not (_make_ui_holder and _make_ui_holder[0].running()):
        _make_ui_holder[:] = [MakeUi()]
    yield _make_ui_holder[0]
    following = request.node.stash.get(NEXT, None)
    if following is None or "demo_ui" not in following.fixturenames:
        _make_ui_holder[0].stop()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    item.stash[NEXT] = nextitem


def pytest_collection_modifyitems(items):
    """The tests of one `make ui` (``demo_ui``) run together, where the first of them stands: the UI
    then reuses the demo `make test` left in .demo/ and stops before a later test replaces it."""
    sharing = [item for item in items if "demo_ui" in getattr(item, "fixturenames", ())]
    if len(sharing) > 1:
        first = items.index(sharing[0])
        rest = [item for item in items if item not in sharing]
        items[:] = rest[:first] + sharing + rest[first:]

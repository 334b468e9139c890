"""Cross-site request forgery against the console, in a real browser: a page on another origin that
auto-submits a form to the review queue, opened by a logged-in operator, leaves the queue unchanged.

Airflow's UI sets its `_token` cookie from JavaScript with no SameSite, so Chromium sends it with a
form another page posts (always from another port of the same host, which is the same site; from
another site for two minutes after the login). The console refuses such a request by its Origin and
Sec-Fetch-Site and by the CSRF token its own forms carry (crm_sync.web.security). A real api-server
serves the console over a seeded warehouse; the operator signs in through Airflow's login page.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import OWN_SHOTS as SHOTS, USER, sign_in  # and its console fixture

pytestmark = [pytest.mark.e2e]
DAG = "ghl_gymdesk"


@pytest.fixture
def warehouse(tmp_path) -> str:
    """A warehouse whose review queue holds two pairs, one of them decided (decision 1: apart)."""
    from crm_sync import review
    from crm_sync.warehouse.db import create, migrate
    from crm_sync.warehouse.tables import staging_contact

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    eng = create(url)
    migrate(eng)
    with eng.begin() as conn:
        conn.execute(sa.insert(staging_contact), [
            {"profile": "gymdesk", "side": side, "source_id": source_id, "email": "fam@example.com",
             "first_name": first, "content_hash": "h", "run_id": "r1"}
            for side, source_id, first in (("ghl", "g1", "Dana"), ("app", "a1", "Dana"), ("app", "a2", "Eli"))])
        review.replace_candidates(conn, "gymdesk", "r1", {("ghl", "g1"): ["app:a1 by email", "app:a2 by email"]})
        review.decide(conn, "gymdesk", "g1", "a2", "apart", "lead")
    eng.dispose()
    return url


def queue_state(url: str) -> list[tuple]:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                "SELECT id, ghl_id, app_id, decision, decided_by, undone_at FROM review_decision ORDER BY id"))]
    finally:
        eng.dispose()


@pytest.fixture
def attacker() -> Iterator[Callable[[str, str], str]]:
    """Another origin's web server: serve(html) -> the URL of a page with that HTML."""
    pages: dict[str, bytes] = {}

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            body = pages.get(self.path, b"not here")
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def serve(name: str, html: str) -> str:
        pages[f"/{name}"] = html.encode()
        return f"/{name}"

    serve.port = server.server_address[1]
    yield serve
    server.shutdown()
    server.server_close()


def forged_form(target: str, fields: dict[str, str]) -> str:
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    return (f'<html><body><h1>You won a prize</h1><form id="f" method="post" action="{target}">{inputs}</form>'
            '<script>document.getElementById("f").submit()</script></body></html>')


@pytest.mark.slow  # about 2 minutes: Airflow's metadata database migrated, an api-server, Chromium
def test_an_auto_submitting_form_on_another_origin_leaves_the_review_queue_unchanged(
        console, attacker, browser, warehouse):
    from selenium.webdriver.common.by import By

    url, password = console
    SHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(browser, url, USER, password)
    browser.get(f"{url}/crm-sync/dags/{DAG}/review")  # the operator has the queue open: logged in
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))  # inside the Airflow UI
    assert "link these two" in browser.find_element(By.TAG_NAME, "body").text
    browser.switch_to.default_content()
    before = queue_state(warehouse)
    assert [(d[1], d[2], d[3], d[5]) for d in before] == [("g1", "a2", "apart", None)]

    decide, undo = f"{url}/crm-sync/dags/{DAG}/review/decide", f"{url}/crm-sync/dags/{DAG}/review/undo"
    attacks = {
        "link": forged_form(decide, {"ghl_id": "g1", "app_id": "a1", "decision": "link"}),
        "link with a made-up token": forged_form(decide, {"ghl_id": "g1", "app_id": "a1", "decision": "link",
                                                          "csrf_token": f"{int(time.time())}.{'0' * 64}"}),
        "undo": forged_form(undo, {"decision_id": "1"}),
    }
    for host in ("127.0.0.1", "localhost"):  # another port of the same site; another site
        for name, html in attacks.items():
            browser.get(f"http://{host}:{attacker.port}{attacker(name.replace(' ', '-'), html)}")
            deadline = time.monotonic() + 20  # the form posts itself: wait for the console's answer
            while "prize" in browser.page_source and time.monotonic() < deadline:
                time.sleep(0.1)
            answer = browser.find_element(By.TAG_NAME, "body").text
            shot = SHOTS / f"csrf-{host}-{name.replace(' ', '-')}.png"
            browser.save_screenshot(str(shot))
            logged_out = "/auth/login" in browser.current_url  # no cookie sent: the console asks for the login
            assert "refused" in answer or logged_out, (host, name, answer)
            if host == "127.0.0.1":  # the same site: the browser sent the login cookie, the console refused it
                assert "must come from the console's own pages" in answer, (name, answer)
            assert queue_state(warehouse) == before, (host, name)

    # the operator's own click still works: the protection refuses forgeries, not people
    browser.get(f"{url}/crm-sync/dags/{DAG}/review")
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    browser.find_element(By.XPATH, "//button[normalize-space()='link these two']").click()
    deadline = time.monotonic() + 20
    while len(queue_state(warehouse)) == 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [(d[1], d[2], d[3], d[4]) for d in queue_state(warehouse)][1:] == [("g1", "a1", "link", USER)]
    assert "linked" in browser.find_element(By.ID, "review-done").text
    assert "?done" not in browser.current_url and "done=" not in browser.current_url

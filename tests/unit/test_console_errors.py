"""What a browser and a script get when the console cannot answer: a page in the console's layout
with a way back, or JSON; a logged-out browser goes to the Airflow login and comes back to the page
it asked for; a page opened in a tab of its own moves into the Airflow UI. The console is mounted
under /crm-sync as the api-server mounts it, with Airflow's real auth manager and tokens."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crm_sync.console_urls import CONSOLE, UI_PAGE, run_report_url, ui_url
from crm_sync.profile import profile_by_name
from crm_sync.web import services
from crm_sync.web.app import create_app

from bench.console_runs import seed

DAG = "ghl_gymdesk"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def auth_manager(monkeypatch):
    """Airflow's auth manager with its own secret. What Airflow reads from its metadata database,
    which unit tests have not, is stood in for: no token is revoked, no DAG belongs to a team."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.models.dag import DagModel
    from airflow.models.revoked_token import RevokedToken

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "console-test-secret-" + "x" * 64)
    monkeypatch.setattr(RevokedToken, "is_revoked", classmethod(lambda cls, jti: False))
    monkeypatch.setattr(DagModel, "get_team_name", staticmethod(lambda dag_id: None))
    return init_auth_manager()


@pytest.fixture
def server(sqlite_warehouse, auth_manager) -> FastAPI:
    """The api-server's way: the console mounted at its prefix (crm_sync_plugin.CrmSyncPlugin)."""
    parent = FastAPI()
    parent.mount(f"/{CONSOLE}", create_app())
    return parent


def token(auth_manager, role: str = "admin") -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return auth_manager.generate_jwt(SimpleAuthManagerUser(username=f"an-{role}", role=role))


@pytest.fixture
def run_id(sqlite_warehouse) -> str:
    with sqlite_warehouse.begin() as conn:
        return seed(conn, profile_by_name("gymdesk"), 1, landed=3, writes=2)[0]


def test_a_logged_out_browser_logs_in_and_lands_on_the_page_it_followed(server, auth_manager, run_id):
    from airflow.api_fastapi.core_api.security import is_safe_url
    from starlette.requests import Request

    browser = TestClient(server, headers=BROWSER, follow_redirects=False)
    report = run_report_url(DAG, run_id) + "?q=dana"
    sent = browser.get(report)
    assert sent.status_code == 303
    login = urlsplit(sent.headers["location"])
    assert sent.headers["location"] == auth_manager.get_url_login(next_url=report)
    assert login.path == "/auth/login"
    back = parse_qs(login.query)["next"][0]
    assert back == report and is_safe_url(back, Request({"type": "http", "scheme": "http", "server": (
        "testserver", 80), "path": "/", "headers": [(b"host", b"testserver")], "root_path": ""}))

    browser.cookies.set("_token", token(auth_manager))  # what the login page leaves behind
    page = browser.get(back)
    assert page.status_code == 200 and "<h1>Sync report: gymdesk" in page.text


def test_an_expired_or_foreign_session_logs_in_again_but_a_script_is_told_in_json(server, auth_manager):
    browser = TestClient(server, headers=BROWSER, follow_redirects=False)
    browser.cookies.set("_token", "not.a.token")
    moved = browser.get(f"/{CONSOLE}/dags/{DAG}")
    assert moved.status_code == 303 and moved.headers["location"] == auth_manager.get_url_login(
        next_url=f"/{CONSOLE}/dags/{DAG}")
    script = TestClient(server, follow_redirects=False)
    assert script.get(f"/{CONSOLE}/dags/{DAG}").json() == {"detail": "Not authenticated"}
    script.cookies.set("_token", "not.a.token")
    assert script.get(f"/{CONSOLE}/dags/{DAG}").json() == {"detail": "Invalid JWT token"}


def test_a_form_posted_after_the_session_ended_logs_in_and_comes_back_to_the_console(server, auth_manager):
    browser = TestClient(server, headers=BROWSER, follow_redirects=False)
    moved = browser.post(f"/{CONSOLE}/dags/{DAG}/review/undo", data={"decision_id": "1"})
    assert moved.status_code == 303 and moved.headers["location"] == auth_manager.get_url_login(next_url=f"/{CONSOLE}/")


def test_a_user_without_the_permission_gets_a_page_that_says_so(server, auth_manager):
    browser = TestClient(server, headers=BROWSER, follow_redirects=False)
    browser.cookies.set("_token", token(auth_manager, "viewer"))  # may read DAGs, not edit them
    refused = browser.post(f"/{CONSOLE}/dags/{DAG}/review/undo", data={"decision_id": "1"})
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
    assert "<h1>Not allowed</h1>" in refused.text and f'href="/{CONSOLE}/dags/{DAG}"' in refused.text


def test_a_missing_run_is_a_page_in_the_consoles_layout_with_a_way_back(server, auth_manager, run_id):
    browser = TestClient(server, headers=BROWSER)
    browser.cookies.set("_token", token(auth_manager))
    missing = browser.get(run_report_url(DAG, "manual__nope"))
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in missing.text and "no run &#39;manual__nope&#39; of ghl_gymdesk" in missing.text
    assert f'<nav><a href="/{CONSOLE}/">crm-sync</a>' in missing.text  # the console's own layout
    assert f'<a href="/{CONSOLE}/dags/{DAG}">the runs of {DAG}</a>' in missing.text
    assert f'<a href="/{CONSOLE}/">the crm-sync profiles</a>' in missing.text

    nowhere = browser.get(f"/{CONSOLE}/no/such/page")
    assert nowhere.status_code == 404 and "<h1>Not found</h1>" in nowhere.text and "the runs of" not in nowhere.text
    assert f"The console has no page at /{CONSOLE}/no/such/page." in nowhere.text
    not_ours = browser.get(f"/{CONSOLE}/dags/not_ours")
    assert not_ours.status_code == 404 and "not_ours is not a crm-sync DAG" in not_ours.text
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from crm_sync.web.security import csrf_token

    csrf = csrf_token(SimpleAuthManagerUser(username="an-admin", role="admin"))  # the form's own: past the CSRF check
    bad = browser.post(f"/{CONSOLE}/dags/{DAG}/review/undo", data={"decision_id": "one", "csrf_token": csrf})
    assert bad.status_code == 422 and "<h1>Bad request</h1>" in bad.text and "decision_id" in bad.text


def test_scripts_get_the_same_errors_as_json(server, auth_manager):
    script = TestClient(server, headers={"Authorization": f"Bearer {token(auth_manager)}"})
    assert script.get(run_report_url(DAG, "manual__nope")).json()["detail"].startswith("no run 'manual__nope'")
    as_json = script.get(run_report_url(DAG, "manual__nope"), headers={"Accept": "application/json, text/html"})
    assert as_json.headers["content-type"] == "application/json"
    assert script.get(f"/{CONSOLE}/no/such/page", headers=BROWSER).text.startswith("<!doctype html>")
    api = script.get(f"/{CONSOLE}/api/no/such/thing", headers=BROWSER)  # the API is JSON, whoever asks
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}
    hook = script.get(f"/{CONSOLE}/webhooks/ghl", headers=BROWSER)  # the receiver takes POSTs only
    assert hook.status_code == 405 and hook.json() == {"detail": "Method Not Allowed"}
    unsigned = script.post(f"/{CONSOLE}/webhooks/ghl", content=b"{}", headers=BROWSER)
    assert unsigned.status_code == 401 and unsigned.headers["content-type"] == "application/json"


def test_a_crash_is_a_page_that_tells_nothing_of_the_exception(server, auth_manager, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("pit-secret-token-0000 leaked?")

    monkeypatch.setattr(services, "report", crash)
    client = TestClient(server, raise_server_exceptions=False)
    client.cookies.set("_token", token(auth_manager))
    page = client.get(run_report_url(DAG, "manual__x"), headers=BROWSER)
    assert page.status_code == 500 and "<h1>Something went wrong</h1>" in page.text
    assert "pit-secret" not in page.text and f'href="/{CONSOLE}/dags/{DAG}"' in page.text
    answer = client.get(run_report_url(DAG, "manual__x", json=True), headers=BROWSER)
    assert answer.status_code == 500 and answer.json() == {"detail": "Internal Server Error"}


def test_a_page_opened_in_a_tab_of_its_own_moves_into_the_airflow_ui(server, auth_manager, run_id):
    navigate = {**BROWSER, "Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"}
    tab = TestClient(server, follow_redirects=False)  # logged out: the UI's own page asks for the login
    report = run_report_url(DAG, run_id)
    moved = tab.get(report + "?q=1", headers=navigate)
    assert moved.status_code == 307 and moved.headers["location"] == f"/plugin/{UI_PAGE}{report}?q=1"
    assert moved.headers["location"] == ui_url(report + "?q=1")

    tab.cookies.set("_token", token(auth_manager))
    framed = tab.get(report, headers={**navigate, "Sec-Fetch-Dest": "iframe"})  # the UI's frame: the page
    assert framed.status_code == 200 and "Sync report" in framed.text
    for script_path in (run_report_url(DAG, run_id, json=True), f"/{CONSOLE}/api/dags/{DAG}/runs"):
        assert tab.get(script_path, headers=navigate).json()  # the API answers where it is asked
    assert tab.post(f"/{CONSOLE}/webhooks/ghl", content=b"{}", headers=navigate).status_code == 401


def test_the_ui_shows_the_console_at_one_address_from_its_navigation_entry():
    """Airflow's UI (3.x) shows a nav view with a url_route at /plugin/<url_route>, its frame at the
    view's href (relative to the UI's base URL), and mirrors the frame's path after /plugin/<url_route>."""
    from crm_sync_plugin import CrmSyncPlugin

    nav = next(v for v in CrmSyncPlugin.external_views if v["destination"] == "nav")
    frame = "/" + nav["href"]
    assert nav["url_route"] == UI_PAGE and frame == f"/{CONSOLE}/"
    assert ui_url(frame) == f"/plugin/{nav['url_route']}{frame}"
    assert ui_url(f"/{CONSOLE}/dags/{DAG}", "/airflow/") == f"/airflow/plugin/{UI_PAGE}/{CONSOLE}/dags/{DAG}"
    assert quote(ui_url("/x")) == ui_url("/x")

"""Every console page and API refuses an anonymous or forged request: the plugin's app is not behind
Airflow's login by itself, so each router declares Airflow's own user dependency."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from crm_sync.web.app import app

OPEN_BY_DESIGN = ("/webhooks/",)  # verified by their signature instead (crm_sync.web.routes.receiver)


def console_routes() -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, path parameters filled in; new routes are covered too."""
    routes = []
    for route in app.routes:
        if not isinstance(route, Route) or route.path.startswith(OPEN_BY_DESIGN):
            continue
        path = re.sub(r"\{dag_id\}", "ghl_gymdesk", route.path)
        path = re.sub(r"\{[^}]+\}", "backfill__2026-11-28T00:00:00+00:00", path)
        routes += [(method, path) for method in sorted(route.methods - {"HEAD"})]
    return routes


def test_the_console_serves_the_agreed_urls():
    paths = {path for _, path in console_routes()}
    assert {"/", "/dags/ghl_gymdesk", "/dags/ghl_gymdesk/runs/backfill__2026-11-28T00:00:00+00:00",
            "/api/dags/ghl_gymdesk/runs/backfill__2026-11-28T00:00:00+00:00", "/dags/ghl_gymdesk/review",
            "/dags/ghl_gymdesk/review/decide", "/dags/ghl_gymdesk/review/undo"} <= paths


@pytest.mark.parametrize(("method", "path"), console_routes())
def test_an_anonymous_request_is_refused(method, path):
    response = TestClient(app).request(method, path)
    assert response.status_code == 401, response.text
    assert "ghl_gymdesk" not in response.text  # nothing of the page leaks


@pytest.fixture
def auth_manager(monkeypatch):
    from airflow.api_fastapi.app import init_auth_manager

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "console-test-secret-" + "x" * 64)
    return init_auth_manager()


@pytest.mark.parametrize(("method", "path"), console_routes())
def test_a_forged_token_is_refused_in_the_header_and_in_the_cookie(auth_manager, method, path):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    other = auth_manager._get_token_signer(expiration_time_in_seconds=60)
    other._secret_key = "not-the-api-servers-secret-" + "y" * 64
    forged = other.generate(auth_manager.serialize_user(SimpleAuthManagerUser(username="admin", role="admin")))
    client = TestClient(app)
    assert client.request(method, path, headers={"Authorization": f"Bearer {forged}"}).status_code == 403
    client.cookies.set("_token", forged)
    assert client.request(method, path).status_code == 403



def test_the_plugin_mounts_the_console_and_links_every_dag_run_and_task_instance_to_its_report():
    from crm_sync_plugin import CrmSyncPlugin

    assert [(a["url_prefix"], a["name"]) for a in CrmSyncPlugin.fastapi_apps] == [("/crm-sync", "crm-sync console")]
    views = {v["destination"]: v for v in CrmSyncPlugin.external_views}
    assert views["nav"]["href"] == "crm-sync/"  # relative: the UI puts its base URL in front
    for where in ("dag_run", "task_instance"):
        assert views[where]["href"] == "crm-sync/dags/{DAG_ID}/runs/{RUN_ID}"

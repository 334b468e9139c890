"""Every console page and API refuses an anonymous or forged request: the plugin's app is not behind
Airflow's login by itself, so each router declares Airflow's own user dependency."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from crm_sync.web.app import app

OPEN_BY_DESIGN = ("/webhooks/",)  # verified by their signature instead (crm_sync.web.routes.receiver, receiver_app)


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
            "/dags/ghl_gymdesk/review/decide", "/dags/ghl_gymdesk/review/undo", "/dags/ghl_gymdesk/rules",
            "/dags/ghl_gymdesk/rules/preview"} <= paths


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


# --- with a real login: cross-site changes, and who may see records -------------------------------

RUN = "backfill__2026-11-28T00:00:00+00:00"


@pytest.fixture
def login(auth_manager, monkeypatch, sqlite_warehouse):
    """A client logged in as Airflow's UI logs in (the `_token` cookie, signed with the api-server's
    secret), against a warehouse with one review candidate; the auth manager is Airflow's simple one,
    whose permissions a test may narrow. What it asks Airflow's metadata database (a DAG's team, whether
    a token was revoked by a logout) is answered here: no team, none revoked."""
    import sqlalchemy as sa
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.models.dag import DagModel
    from airflow.models.revoked_token import RevokedToken

    from crm_sync import review
    from crm_sync.warehouse.tables import staging_contact

    monkeypatch.setattr(DagModel, "get_team_name", staticmethod(lambda dag_id, **_: None))
    monkeypatch.setattr(RevokedToken, "is_revoked", classmethod(lambda cls, jti, **_: False))
    with sqlite_warehouse.begin() as conn:
        conn.execute(sa.insert(staging_contact), [
            {"profile": "gymdesk", "side": side, "source_id": source_id, "email": "dana@example.org",
             "first_name": first, "content_hash": "h", "run_id": "r1"}
            for side, source_id, first in (("ghl", "g1", "Dana"), ("app", "a1", "Dana"), ("app", "a2", "Eli"))])
        review.replace_candidates(conn, "gymdesk", "r1", {("ghl", "g1"): ["app:a1 by email", "app:a2 by email"]})

    def client_of(username: str) -> TestClient:
        client = TestClient(app)
        client.cookies.set("_token", auth_manager.generate_jwt(SimpleAuthManagerUser(username=username, role="admin")))
        return client

    return client_of


def decisions_stored(engine) -> list[tuple]:
    import sqlalchemy as sa

    from crm_sync.warehouse.tables import review_decision

    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(review_decision.c.ghl_id, review_decision.c.app_id,
                                                         review_decision.c.decision, review_decision.c.undone_at))]


def csrf_of(client: TestClient) -> str:
    page = client.get("/dags/ghl_gymdesk/review")
    assert page.status_code == 200, page.text
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]


CROSS_SITE = {
    "another site's Origin": {"Origin": "https://evil.example"},
    "another port's Origin (same site)": {"Origin": "http://testserver:8081", "Sec-Fetch-Site": "same-site"},
    "Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": "cross-site"},
    "Sec-Fetch-Site cross-site, own Origin": {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver"},
}


@pytest.mark.parametrize("headers", CROSS_SITE.values(), ids=CROSS_SITE.keys())
def test_a_cookie_only_cross_site_form_post_is_refused_and_stores_nothing(login, sqlite_warehouse, headers):
    client = login("admin")
    token = csrf_of(client)  # even with the user's own token: the browser says another page sent it
    form = {"ghl_id": "g1", "app_id": "a1", "decision": "link", "csrf_token": token}
    refused = client.post("/dags/ghl_gymdesk/review/decide", data=form, headers=headers, follow_redirects=False)
    assert refused.status_code == 403 and "must come from the console's own pages" in refused.json()["detail"]
    assert decisions_stored(sqlite_warehouse) == []
    taken = client.post("/dags/ghl_gymdesk/review/decide", data=form, follow_redirects=False,
                        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})
    assert taken.status_code == 303  # the same form from the console's own page
    assert [d[:3] for d in decisions_stored(sqlite_warehouse)] == [("g1", "a1", "link")]
    refused_undo = client.post("/dags/ghl_gymdesk/review/undo", data={"decision_id": "1", "csrf_token": token},
                               headers=headers, follow_redirects=False)
    assert refused_undo.status_code == 403 and decisions_stored(sqlite_warehouse)[0][3] is None  # still active


@pytest.mark.parametrize("token", ["", "missing", "another user's", "expired", "tampered", "not ASCII"])
def test_a_form_post_without_this_users_csrf_token_is_refused_and_stores_nothing(login, sqlite_warehouse, token):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from crm_sync.web.security import CSRF_LIFETIME, csrf_token

    client, admin = login("admin"), SimpleAuthManagerUser(username="admin", role="admin")
    own = csrf_of(client)
    value = {"": "", "missing": None, "another user's": csrf_of(login("mallory")),
             "expired": csrf_token(admin, now=time.time() - CSRF_LIFETIME - 5),
             "tampered": own[:-1] + ("0" if own[-1] != "0" else "1"),
             "not ASCII": own.split(".")[0] + ".é" + own[-10:]}[token]
    form = {"ghl_id": "g1", "app_id": "a1", "decision": "apart"} | ({} if value is None else {"csrf_token": value})
    same_origin = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    refused = client.post("/dags/ghl_gymdesk/review/decide", data=form, headers=same_origin, follow_redirects=False)
    assert refused.status_code == 403 and "csrf_token" in refused.json()["detail"]
    assert decisions_stored(sqlite_warehouse) == []
    taken = client.post("/dags/ghl_gymdesk/review/decide", data={**form, "csrf_token": own}, headers=same_origin,
                        follow_redirects=False)
    assert taken.status_code == 303 and len(decisions_stored(sqlite_warehouse)) == 1


def test_a_script_with_a_bearer_token_needs_no_csrf_token_but_no_foreign_origin(login, auth_manager, sqlite_warehouse):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    jwt = auth_manager.generate_jwt(SimpleAuthManagerUser(username="ops", role="admin"))
    bearer = {"Authorization": f"Bearer {jwt}"}
    client, form = TestClient(app), {"ghl_id": "g1", "app_id": "a1", "decision": "apart"}
    assert client.post("/dags/ghl_gymdesk/review/decide", data=form, follow_redirects=False,
                       headers={**bearer, "Origin": "https://evil.example"}).status_code == 403
    assert client.post("/dags/ghl_gymdesk/review/decide", data=form, headers=bearer,
                       follow_redirects=False).status_code == 303
    assert [d[:3] for d in decisions_stored(sqlite_warehouse)] == [("g1", "a1", "apart")]


def test_a_pair_the_queue_did_not_propose_is_a_400_naming_the_rule_and_stores_nothing(login, sqlite_warehouse):
    client = login("admin")
    form = {"ghl_id": "g1", "app_id": "a3", "decision": "link", "csrf_token": csrf_of(client)}
    for decision in ("link", "apart"):
        refused = client.post("/dags/ghl_gymdesk/review/decide", data={**form, "decision": decision},
                              headers={"Origin": "http://testserver"}, follow_redirects=False)
        assert refused.status_code == 400
        assert "are not a pair the review queue of profile gymdesk proposed" in refused.text
        assert 'href="/dags/ghl_gymdesk/review"' in refused.text  # the way back to the queue
    as_json = client.post("/dags/ghl_gymdesk/review/decide", data=form, headers={"Accept": "application/json"})
    assert as_json.status_code == 400 and "only its candidate pairs" in as_json.json()["detail"]
    assert decisions_stored(sqlite_warehouse) == []


class Denies:
    """Airflow's simple auth manager, minus some kinds of a DAG's data (as a role without them has)."""

    def __init__(self, auth_manager, *denied):
        self.allowed, self.denied = type(auth_manager).is_authorized_dag.__get__(auth_manager), set(denied)

    def __call__(self, *, method, user, access_entity=None, details=None):
        return access_entity not in self.denied and self.allowed(method=method, user=user, access_entity=access_entity,
                                                                  details=details)


@pytest.fixture
def a_run(sqlite_warehouse):
    from bench.console_runs import seed
    from crm_sync.profile import profile_by_name

    with sqlite_warehouse.begin() as conn:
        return seed(conn, profile_by_name("gymdesk"), 1, landed=3, writes=2)[0]


def test_records_need_the_dags_runs_and_raw_payloads_its_task_logs(login, auth_manager, monkeypatch, a_run):
    from urllib.parse import quote

    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    client = login("admin")
    report = f"/dags/ghl_gymdesk/runs/{quote(a_run, safe='')}"
    report_json = f"/api{report}"
    records = (report, report_json, "/dags/ghl_gymdesk/review", "/api/dags/ghl_gymdesk/review",
               "/api/dags/ghl_gymdesk/review/decisions")
    assert [client.get(path).status_code for path in (*records, "/dags/ghl_gymdesk")] == [200] * 6

    monkeypatch.setattr(auth_manager, "is_authorized_dag", Denies(auth_manager, DagAccessEntity.RUN))
    assert [client.get(path).status_code for path in records] == [403] * 5
    assert client.get("/dags/ghl_gymdesk").status_code == 200  # the DAG itself: its runs' counts, no record
    assert client.get("/api/dags/ghl_gymdesk/runs").status_code == 200
    for path in records:
        assert "dana@example.org" not in client.get(path).text and "Dana" not in client.get(path).text

    monkeypatch.setattr(auth_manager, "is_authorized_dag", Denies(auth_manager, DagAccessEntity.TASK_LOGS))
    assert [client.get(path).status_code for path in records] == [403, 403, 200, 200, 200]


def test_the_rules_page_needs_the_dag_and_a_rules_preview_its_runs(login, auth_manager, monkeypatch):
    """The rules page shows the profile's rules and counts; a preview shows records (who a rule would
    act on, what it would write to them), as the review queue does."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    client = login("admin")
    rules, preview = "/dags/ghl_gymdesk/rules", "/dags/ghl_gymdesk/rules/preview?rule=new_contact_task_1"
    assert [client.get(path).status_code for path in (rules, preview)] == [200, 200]
    monkeypatch.setattr(auth_manager, "is_authorized_dag", Denies(auth_manager, DagAccessEntity.RUN))
    assert client.get(rules).status_code == 200
    refused = client.get(preview)
    assert refused.status_code == 403 and "Dana" not in refused.text


def test_a_failed_tasks_error_shows_on_the_runs_list_only_to_who_may_read_its_log(login, auth_manager, monkeypatch,
                                                                                  a_run):
    """The runs list needs the DAG alone; a failed task's error can quote a server's answer about a
    record, so it is shown as Airflow shows a task log: with the runs and task logs permissions."""
    from types import SimpleNamespace

    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    from crm_sync.pipeline.context import RunContext
    from crm_sync.pipeline.run_failed import record_failure

    context = {"dag_run": SimpleNamespace(run_id=a_run, run_type="backfill"), "params": {"dry_run": False},
               "ti": SimpleNamespace(task_id="load", try_number=1, max_tries=0)}
    record_failure(RunContext.from_airflow("gymdesk", context), context,
                   RuntimeError("GHL answered 422: duplicate contact erin@example.org"))
    client = login("admin")
    assert "erin@example.org" in client.get("/dags/ghl_gymdesk").text
    for denied in (DagAccessEntity.TASK_LOGS, DagAccessEntity.RUN):
        monkeypatch.setattr(auth_manager, "is_authorized_dag", Denies(auth_manager, denied))
        page = client.get("/dags/ghl_gymdesk")
        assert page.status_code == 200 and "load" in page.text and "erin@example.org" not in page.text, denied

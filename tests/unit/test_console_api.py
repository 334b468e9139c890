"""The console's JSON API as a script sees it, in-process against a SQLite warehouse: the profiles
with their newest run, a profile's runs paged newest first, its review queue and decisions; each
answer is its documented model, and the OpenAPI lists every route."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from crm_sync.console_urls import API_DAGS, API_DECISIONS, API_REVIEW, API_RUNS, OPENAPI, run_report_url
from crm_sync.pipeline.report import build_report
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.tables import review_candidate, staging_contact
from crm_sync.web import security
from crm_sync.web.app import create_app
from crm_sync.web.datamodels import DagCollection, DecisionCollection, ReviewQueue, RunCollection

from bench.console_runs import seed

DAG = "ghl_gymdesk"
JSON = {"Accept": "application/json"}


@pytest.fixture
def client(sqlite_warehouse, monkeypatch):
    """A script with a token that may read and edit every DAG but sees only ghl_gymdesk listed."""
    from airflow.api_fastapi import app as airflow_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    class ReadsOneDag:
        def get_authorized_dag_ids(self, user, method):
            return {DAG}

    monkeypatch.setattr(airflow_app, "get_auth_manager", ReadsOneDag)
    app = create_app()
    for depends in (*security.LOGGED_IN, *security.READ_TASK_LOGS, *security.EDIT_DAG):
        app.dependency_overrides[depends.dependency] = lambda: None
    app.dependency_overrides[security.may_read_task_logs] = lambda: True  # an admin
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="script", role="admin")
    return TestClient(app, headers=JSON)


@pytest.fixture
def runs(sqlite_warehouse) -> list[str]:
    with sqlite_warehouse.begin() as conn:
        return seed(conn, profile_by_name("gymdesk"), 7, landed=5, writes=4)


def path(template: str, **params: str) -> str:
    return template.format(**params)


def test_the_dags_are_the_readable_profiles_each_with_its_newest_run(client, runs, sqlite_warehouse):
    answer = client.get(API_DAGS)
    assert answer.status_code == 200
    dags = DagCollection.model_validate(answer.json())
    assert [d.dag_id for d in dags.dags] == [DAG] and dags.total_entries == 1  # the others are not readable
    gymdesk = dags.dags[0]
    assert (gymdesk.profile, gymdesk.app, gymdesk.review_pending) == ("gymdesk", profile_by_name("gymdesk").app.kind, 0)
    with sqlite_warehouse.connect() as conn:
        newest = build_report(conn, profile_by_name("gymdesk"), runs[-1])
    latest = gymdesk.latest_run
    assert latest.run_id == runs[-1] and latest.state == "success"
    assert (latest.writes_sent, latest.quarantined) == (newest["writes_sent"], newest["quarantined"])
    assert latest.sides["ghl"].model_dump() == newest["sides"]["ghl"]
    assert latest.report == run_report_url(DAG, runs[-1], json=True)
    assert client.get(latest.report.removeprefix("/crm-sync")).json()["run_id"] == runs[-1]


def test_runs_come_newest_first_in_pages_that_cover_them_all_once(client, runs):
    first = RunCollection.model_validate(client.get(path(API_RUNS, dag_id=DAG), params={"limit": 3}).json())
    assert first.total_entries == 7 and [r.run_id for r in first.runs] == runs[::-1][:3]
    seen = []
    for offset in range(0, 9, 3):
        page = client.get(path(API_RUNS, dag_id=DAG), params={"limit": 3, "offset": offset}).json()
        seen += [r["run_id"] for r in page["runs"]]
        assert page["total_entries"] == 7
    assert seen == runs[::-1]
    stopped = {r["run_id"]: r for r in client.get(path(API_RUNS, dag_id=DAG)).json()["runs"]}
    assert all(run["state"] == "success" and run["failed_at"] is None for run in stopped.values())
    assert client.get(path(API_RUNS, dag_id=DAG), params={"offset": 50}).json() == {"runs": [], "total_entries": 7}


def test_a_run_still_running_and_a_failed_run_say_so(client, runs, sqlite_warehouse):
    from crm_sync.warehouse.tables import run_log

    with sqlite_warehouse.begin() as conn:
        conn.execute(sa.delete(run_log).where(run_log.c.run_id == runs[-1], run_log.c.step == "report"))
        conn.execute(sa.update(run_log).where(run_log.c.run_id == runs[-2], run_log.c.step == "validate")
                     .values(stats={"passed": False}))
    states = {r["run_id"]: (r["state"], r["failed_at"])
              for r in client.get(path(API_RUNS, dag_id=DAG)).json()["runs"]}
    assert states[runs[-1]][0] == "running"
    assert states[runs[-2]] == ("failed", "validate")


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "ten"}])
def test_a_page_out_of_bounds_is_refused_in_json(client, query):
    answer = client.get(path(API_RUNS, dag_id=DAG), params=query)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/json"
    assert answer.json()["detail"][0]["loc"][0] == "query"


def test_a_dag_that_is_not_a_profiles_is_a_json_404_even_for_a_browser(client):
    for template in (API_RUNS, API_REVIEW, API_DECISIONS):
        answer = client.get(path(template, dag_id="not_ours"), headers={"Accept": "text/html"})
        assert answer.status_code == 404 and "not a crm-sync DAG" in answer.json()["detail"]


def test_the_review_queue_and_decisions_are_what_the_page_shows(client, sqlite_warehouse):
    with sqlite_warehouse.begin() as conn:
        conn.execute(sa.insert(staging_contact), [
            {"profile": "gymdesk", "side": side, "source_id": source_id, "email": "dana@example.org",
             "first_name": first, "content_hash": "h", "run_id": "r1"}
            for side, source_id, first in (("ghl", "g1", "Dana"), ("app", "a1", "Dana"), ("app", "a2", "Dan"))])
        conn.execute(sa.insert(review_candidate), [
            {"profile": "gymdesk", "ghl_id": "g1", "app_id": app_id, "reason": "by email, another first name",
             "run_id": "r1"} for app_id in ("a1", "a2")])
    queue = ReviewQueue.model_validate(client.get(path(API_REVIEW, dag_id=DAG)).json())
    assert queue.total_entries == 1
    item = queue.items[0]
    assert [(r.side, r.id, r.fields["first_name"]) for r in item.records] == [
        ("app", "a1", "Dana"), ("app", "a2", "Dan"), ("ghl", "g1", "Dana")]
    assert [(p.app_id, p.decision) for p in item.pairs] == [("a1", None), ("a2", None)]

    script = SimpleAuthManagerUser(username="script", role="admin")  # the fixture's user
    form = {"ghl_id": "g1", "app_id": "a2", "csrf_token": security.csrf_token(script)}
    assert client.post(f"/dags/{DAG}/review/decide", data={**form, "decision": "apart"},
                       follow_redirects=False).status_code == 303
    assert client.post(f"/dags/{DAG}/review/decide", data={**form, "decision": "link"},
                       follow_redirects=False).status_code == 303  # replaces the first
    decisions = DecisionCollection.model_validate(client.get(path(API_DECISIONS, dag_id=DAG)).json())
    assert [(d.decision, d.active, d.decided_by, d.undone_by) for d in decisions.decisions] == [
        ("link", True, "script", None), ("apart", False, "script", "script")]
    paired = client.get(path(API_REVIEW, dag_id=DAG)).json()["items"][0]["pairs"]
    assert paired[1]["decision"]["decision"] == "link" and paired[1]["decision"]["id"] == decisions.decisions[0].id
    one = client.get(path(API_DECISIONS, dag_id=DAG), params={"limit": 1, "offset": 1}).json()
    assert [d["decision"] for d in one["decisions"]] == ["apart"] and one["total_entries"] == 2


def test_the_openapi_lists_every_json_route_with_its_model(client):
    schema = client.get(OPENAPI).json()
    answers = {p: ops["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
               for p, ops in schema["paths"].items() if p.startswith("/api/")}
    assert answers == {API_DAGS: "DagCollection", API_RUNS: "RunCollection", API_REVIEW: "ReviewQueue",
                       API_DECISIONS: "DecisionCollection", "/api/dags/{dag_id}/runs/{run_id}": "RunReport",
                       "/api/dags/{dag_id}/people": "PersonCollection",
                       "/api/dags/{dag_id}/people/{person_id}": "PersonDetail"}
    runs = schema["paths"][API_RUNS]["get"]
    assert {p["name"] for p in runs["parameters"]} == {"dag_id", "limit", "offset"}
    assert {"state", "sides", "report"} <= set(schema["components"]["schemas"]["RunSummary"]["properties"])


def test_a_script_without_a_token_gets_json_not_a_login_page(sqlite_warehouse):
    for template in (API_DAGS, API_RUNS, API_REVIEW, API_DECISIONS):
        answer = TestClient(create_app()).get(path(template, dag_id=DAG), headers={"Accept": "text/html"})
        assert answer.status_code == 401 and answer.json() == {"detail": "Not authenticated"}


def test_run_ids_are_quoted_whole_in_report_links(client, runs):
    listed = client.get(path(API_RUNS, dag_id=DAG), params={"limit": 1}).json()["runs"][0]
    assert quote(runs[-1], safe="") in listed["report"] and "+" not in listed["report"]


def test_the_api_servers_own_openapi_lists_the_console_api_beside_airflows(sqlite_warehouse):
    """Airflow mounts the console; the plugin's root middleware puts its script routes in the root
    app's /openapi.json (and so /docs), under the prefix, each model resolvable; pages stay out, and a
    model name the root already uses for another model is renamed, not overwritten."""
    from fastapi import FastAPI
    from pydantic import BaseModel

    from crm_sync.web.openapi import ConsoleInOpenAPI

    class DagCollection(BaseModel):  # Airflow's own, a different model of the same name
        dags: list[str]

    root = FastAPI(title="Airflow API")
    root.get("/api/v2/dags", response_model=DagCollection)(lambda: DagCollection(dags=[]))
    root.mount("/crm-sync", create_app())
    root.add_middleware(ConsoleInOpenAPI)
    schema = TestClient(root).get("/openapi.json").json()
    ours = {p: ops for p, ops in schema["paths"].items() if p.startswith("/crm-sync/")}
    assert set(ours) == {"/crm-sync" + p for p in (API_DAGS, API_RUNS, API_REVIEW, API_DECISIONS,
                                                   "/api/dags/{dag_id}/runs/{run_id}", "/webhooks/ghl",
                                                   "/webhooks/app/{profile}",
                                                   "/api/dags/{dag_id}/people", "/api/dags/{dag_id}/people/{person_id}")}
    assert all(op["tags"] == ["crm-sync"] for ops in ours.values() for op in ops.values())
    models = schema["components"]["schemas"]
    answer = ours["/crm-sync" + API_DAGS]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert answer == "#/components/schemas/CrmSyncDagCollection" and "total_entries" in models["CrmSyncDagCollection"]["properties"]
    assert models["DagCollection"]["properties"].keys() == {"dags"}  # Airflow's stays as it was
    refs = {ref.rsplit("/", 1)[1] for ref in __import__("re").findall(r'"(#/components/schemas/[^"]+)"', str(schema).replace("'", '"'))}
    assert refs <= set(models)
    assert "/api/v2/dags" in schema["paths"]

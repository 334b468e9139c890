"""The console as a logged-in user sees it, in-process against a SQLite warehouse: every JSON route
answers a documented model, the report's JSON is the report the task exports, the runs list links
each run, and a review decision is stored (or refused) in the request's one transaction."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crm_sync.console_urls import OPENAPI, run_report_url
from crm_sync.pipeline.report import build_report
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.tables import review_decision, staging_contact
from crm_sync.web import security
from crm_sync.web.app import create_app

from bench.console_runs import seed

DAG = "ghl_gymdesk"


@pytest.fixture
def client(sqlite_warehouse):
    """The console with Airflow's login stood in for by a user who may read and edit every DAG
    (tests/unit/test_console_access.py holds that the real dependencies refuse everyone else)."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    app = create_app()
    for depends in (*security.LOGGED_IN, *security.READ_DAG, *security.READ_RUNS, *security.READ_TASK_LOGS,
                    *security.EDIT_DAG):
        app.dependency_overrides[depends.dependency] = lambda: None
    app.dependency_overrides[security.may_read_task_logs] = lambda: True  # an admin
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="reviewer", role="admin")
    return TestClient(app)


@pytest.fixture
def runs(sqlite_warehouse) -> list[str]:
    with sqlite_warehouse.begin() as conn:
        return seed(conn, profile_by_name("gymdesk"), 3, landed=5, writes=4)


def test_every_json_route_answers_a_model_the_openapi_documents():
    schema = create_app().openapi()
    models = schema["components"]["schemas"]
    json_answers = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if "application/json" in answer.get("content", {}):
                    json_answers += 1
                    ref = answer["content"]["application/json"]["schema"].get("$ref", "")
                    assert ref.rsplit("/", 1)[-1] in models, f"{method.upper()} {path} answers {status} without a model"
    assert json_answers >= 10  # the report, the API's four lists, the receiver's 200/202/400/401/413
    assert {"RunReport", "DagCollection", "RunCollection", "ReviewQueue", "DecisionCollection", "WebhookAnswer",
            "Refusal"} <= set(models)


def test_a_logged_in_user_reads_the_json_apis_description_at_its_url(client):
    schema = client.get(OPENAPI).json()
    report = schema["paths"]["/api/dags/{dag_id}/runs/{run_id}"]["get"]["responses"]["200"]
    assert report["content"]["application/json"]["schema"]["$ref"].endswith("/RunReport")
    assert "sides" in schema["components"]["schemas"]["RunReport"]["properties"]


def test_the_report_json_is_the_report_the_task_exports(client, runs, sqlite_warehouse):
    with sqlite_warehouse.connect() as conn:
        report = json.loads(json.dumps(build_report(conn, profile_by_name("gymdesk"), runs[0]), default=str))
    url = run_report_url(DAG, runs[0], json=True).removeprefix("/crm-sync")
    answer = client.get(url, params={"per_page": 500})  # one page holds every row: the file's content
    assert answer.status_code == 200 and answer.json() == {**report, "listed": answer.json()["listed"]}
    assert list(answer.json()) == list(report) and report["writes"] and report["quarantine"]
    listed = answer.json()["listed"]["writes"]
    assert listed["total"] == listed["all"] == listed["last"] == len(report["writes"])
    assert report["listed"]["writes"]["last"] == len(report["writes"])  # the exported file lists every write
    first = client.get(url, params={"per_page": 1}).json()  # the console's page: one write, the same counts
    assert first["writes"] == report["writes"][:1] and first["sides"] == report["sides"]
    assert client.get(run_report_url(DAG, "manual__nope", json=True).removeprefix("/crm-sync")).status_code == 404
    assert client.get(f"/api/dags/not_ours/runs/{quote(runs[0], safe='')}").status_code == 404


def test_no_other_site_may_frame_a_console_page(client, runs):
    """The Airflow UI frames the console from its own origin; a page of another site framing it could
    trick an operator's click on "link these two" past the Origin check and the CSRF token."""
    for path in ("/dags/ghl_gymdesk", "/dags/ghl_gymdesk/review", "/dags/ghl_gymdesk/runs/" + quote(runs[0], safe=""),
                 "/dags/not_ours"):
        answer = client.get(path, headers={"Accept": "text/html"})
        assert answer.headers["content-security-policy"] == "frame-ancestors 'self'", path
        assert answer.headers["x-frame-options"] == "SAMEORIGIN", path


def test_the_runs_list_links_every_run_to_its_report_page(client, runs):
    page = client.get(f"/dags/{DAG}").text
    assert page.count("<tr>") == len(runs) + 2  # two header rows: the sides, then their columns
    for run_id in runs:  # newest first
        # its report page, and its DAG run in Airflow's grid (the same path here: this client serves the console at /)
        assert page.count(f'/dags/{DAG}/runs/{quote(run_id, safe="/")}"') == 2
    assert page.index(quote(runs[-1], safe="/")) < page.index(quote(runs[0], safe="/"))
    report = client.get(run_report_url(DAG, runs[0]).removeprefix("/crm-sync"))
    assert report.status_code == 200 and "last_write_wins: GHL&#39;s is newer" in report.text


def test_a_review_decision_is_stored_and_a_refused_one_says_why(client, sqlite_warehouse):
    from crm_sync import review

    with sqlite_warehouse.begin() as conn:
        conn.execute(sa.insert(staging_contact), [
            {"profile": "gymdesk", "side": side, "source_id": source_id, "email": "dana@example.org",
             "first_name": "Dana", "content_hash": "h", "run_id": "r1"}
            for side, source_id in (("ghl", "g1"), ("app", "a1"))])
        review.replace_candidates(conn, "gymdesk", "r1", {("ghl", "g1"): ["app:a1 by email"]})
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/dags/{DAG}/review").text)[1]
    form = {"ghl_id": "g1", "app_id": "a1", "csrf_token": token}

    refused = client.post(f"/dags/{DAG}/review/decide", data={**form, "decision": "maybe"}, follow_redirects=False)
    assert refused.status_code == 400 and "decision must be one of" in refused.text
    assert f'href="/dags/{DAG}/review"' in refused.text  # the way back
    kept = client.post(f"/dags/{DAG}/review/decide", data={**form, "decision": "apart"}, follow_redirects=False)
    assert kept.status_code == 303 and kept.headers["location"] == f"/dags/{DAG}/review"  # no message in the URL
    with sqlite_warehouse.connect() as conn:
        stored = conn.execute(sa.select(review_decision.c.id, review_decision.c.decision,
                                        review_decision.c.decided_by)).all()
    assert [(d.decision, d.decided_by) for d in stored] == [("apart", "reviewer")]
    shown = client.get(kept.headers["location"]).text
    assert "kept apart; the next run applies it" in shown and "apart" in shown
    assert "kept apart; the next run" not in client.get(kept.headers["location"]).text  # said once

    missing = client.post(f"/dags/{DAG}/review/undo", data={"decision_id": "999", "csrf_token": token},
                          follow_redirects=False, headers={"Accept": "application/json"})
    assert missing.status_code == 400 and "no active review decision 999" in missing.json()["detail"]
    undone = client.post(f"/dags/{DAG}/review/undo", data={"decision_id": str(stored[0].id), "csrf_token": token})
    assert f"decision {stored[0].id} undone" in undone.text


def test_the_index_shows_each_profiles_newest_run(client, runs, sqlite_warehouse, monkeypatch):
    from airflow.api_fastapi import app as airflow_app

    class ReadsOneDag:
        def get_authorized_dag_ids(self, user, method):
            return {DAG}

    monkeypatch.setattr(airflow_app, "get_auth_manager", ReadsOneDag)
    with sqlite_warehouse.connect() as conn:
        newest = build_report(conn, profile_by_name("gymdesk"), runs[-1])
    page = client.get("/").text
    row = page[page.index(f'<a href="/dags/{DAG}">'):].split("</tr>")[0]
    assert f'/dags/{DAG}/runs/{quote(runs[-1], safe="/")}">{runs[-1]}</a>' in row
    assert f"<td>{newest['writes_sent']}</td><td class=\"bad\">{newest['quarantined']}</td>" in row
    assert newest["writes_sent"] and newest["quarantined"]

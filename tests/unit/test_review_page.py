"""The review page as a logged-in user sees it: before "link these two", what each side would hold
after the link, field by field; after a decision, what was done, said once and never in the URL."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crm_sync import review
from crm_sync.warehouse.tables import staging_contact
from crm_sync.web import security
from crm_sync.web.app import create_app

DAG, AT = "ghl_gymdesk", datetime(2026, 10, 1, 9, tzinfo=UTC)


@pytest.fixture
def client(sqlite_warehouse):
    """Airflow's login stood in for (tests/unit/test_console_access.py holds the real one refuses others)."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    columns = ("source_id", "email", "first_name", "last_name", "lead_source", "updated_at")
    rows = [("ghlFamily", "fam@example.com", "Family", "Account", None, AT),
            ("mem_951", "fam@example.com", "Parent", "Family", "Walk-in", AT)]
    with sqlite_warehouse.begin() as conn:
        conn.execute(sa.insert(staging_contact), [
            {"profile": "gymdesk", "side": "ghl" if row[0].startswith("ghl") else "app", "content_hash": "h",
             "run_id": "r1", **dict(zip(columns, row, strict=True))} for row in rows])
        review.replace_candidates(conn, "gymdesk", "r1",
                                  {("ghl", "ghlFamily"): ["app:mem_951 by email, another first name"]})
    app = create_app()
    for depends in (*security.LOGGED_IN, *security.READ_RUNS, *security.EDIT_DAG):
        app.dependency_overrides[depends.dependency] = lambda: None
    app.dependency_overrides[security.may_read_task_logs] = lambda: True  # an admin
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="reviewer", role="admin")
    return TestClient(app)


def cells(html: str, field: str) -> list[str]:
    preview = html[html.index('class="link-preview"'):]
    row = re.search(rf"<tr><td>{field}</td>(.*?)</tr>", preview, re.S)[1]
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>.*?</td>", row, re.S)]


def test_before_a_link_the_page_shows_what_each_side_will_hold(client):
    page = client.get(f"/dags/{DAG}/review").text
    assert "If linked: what each side holds after the next run" in page
    # GHL now, GHL after, app now, app after, why
    assert cells(page, "first_name") == ["Family", "Family", "Parent", "Parent",
                                         "linked by review: each side keeps its own (the next change settles it)"]
    assert cells(page, "lead_source") == ["", "Walk-in (filled)", "Walk-in", "Walk-in", "keep non-empty"]
    assert cells(page, "email")[-1] == "the same on both sides"


def test_a_decision_is_said_once_on_the_queue_and_never_in_the_url(client):
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/dags/{DAG}/review").text)[1]
    answer = client.post(f"/dags/{DAG}/review/decide", follow_redirects=False,
                         data={"ghl_id": "ghlFamily", "app_id": "mem_951", "decision": "link", "csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"] == f"/dags/{DAG}/review"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Path=/dags/ghl_gymdesk/review" in cookie and "linked" not in cookie
    shown = client.get(answer.headers["location"])
    assert "ghl:ghlFamily and app:mem_951 linked; the next run applies it" in shown.text
    assert 'crm_sync_review_done=""' in shown.headers["set-cookie"] or "Max-Age=0" in shown.headers["set-cookie"]
    assert "linked; the next run" not in client.get(f"/dags/{DAG}/review").text  # said once
    client.cookies.set("crm_sync_review_done", "eyJ4Ijoib3duZWQifQ.forged", path=f"/dags/{DAG}/review")
    assert "owned" not in client.get(f"/dags/{DAG}/review").text  # a cookie the console did not sign says nothing

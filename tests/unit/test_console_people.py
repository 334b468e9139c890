"""The console's people as a logged-in user and a script see them, in-process against a SQLite warehouse
seeded as a run leaves the models (person, person_activity, sync_changelog) and the history's tables:
the search finds a name, an email or a phone typed any way, a person's page shows both records, who
won, the timeline of both sides in the profile's zone and the history linked to runs, a run report's
rows link to their person, and the JSON says the same as the pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crm_sync.pipeline.people_search_keys import fold_name, phone_digits
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.tables import (
    person,
    person_activity,
    quarantine,
    raw_record,
    review_decision,
    staging_contact,
    sync_changelog,
    webhook_done,
    webhook_inbox,
)
from crm_sync.web import security
from crm_sync.web.app import create_app
from crm_sync.web.people_models import PersonCollection, PersonDetail

DAG, ZONE = "ghl_gymdesk", "America/New_York"
RUN1, RUN2, RUN3 = ("scheduled__2026-12-01T00:00:00+00:00", "scheduled__2026-12-02T00:00:00+00:00",
                    "manual__2026-12-03T00:00:00+00:00")
T0 = datetime(2026, 12, 1, tzinfo=UTC)
JSON = {"Accept": "application/json"}


def person_row(profile: str, person_id: int, ghl: dict | None, app: dict | None, status: str, changed: datetime,
               **extra) -> dict:
    """A person as the models' refresh writes it: the merged values (GHL's first), the search keys of both sides."""
    sides = [side for side in (ghl, app) if side]
    merged = {**(app or {}), **(ghl or {})}
    return {"person_id": person_id, "profile": profile, "ghl_id": ghl and ghl["id"], "app_id": app and app["id"],
            "first_name": merged.get("first_name"), "last_name": merged.get("last_name"),
            "email": merged.get("email"), "phone": merged.get("phone"), "company_name": merged.get("company_name"),
            "lead_source": merged.get("lead_source"), "tags": merged.get("tags"), "status": status,
            "first_seen": T0 - timedelta(days=30), "last_synced": changed if status == "synced" else None,
            "ghl_changed_at": ghl and changed, "app_changed_at": app and changed, "winners": None,
            "search_name": " | ".join(fold_name(f"{s.get('first_name') or ''} {s.get('last_name') or ''}")
                                      for s in sides),
            "search_email": " ".join((s.get("email") or "").lower() for s in sides if s.get("email")),
            "search_phone": " ".join(phone_digits(s["phone"]) for s in sides if s.get("phone")),
            "run_id": RUN1, "updated_at": changed, **extra}


def staged(profile: str, side: str, record: dict) -> dict:
    return {"profile": profile, "side": side, "source_id": record["id"], "email": record.get("email"),
            "phone": record.get("phone"), "first_name": record.get("first_name"), "last_name": record.get("last_name"),
            "tags": record.get("tags"), "updated_at": T0, "content_hash": "h", "run_id": RUN1}


JOSE = {"id": "g-jose", "first_name": "José", "last_name": "García", "email": "jose@example.org",
        "phone": "+15550102030"}
PAT = {"id": "mem_2", "first_name": "Pat", "last_name": "Lee", "email": "pat@example.org", "phone": "+15550102030"}
DANA_GHL = {"id": "g-dana", "first_name": "Dana", "last_name": "Smith", "email": "dana@example.org",
            "phone": "+15550109999", "tags": ["member"]}
DANA_APP = {"id": "mem_3", "first_name": "Dana", "last_name": "Smith-Jones", "email": "dana@example.org",
            "phone": "+15550109999", "tags": ["member"]}
DANA = 3


def seed_dana(conn: sa.Connection, profile: str = "gymdesk") -> None:
    """Dana, on both sides: the app's last name won; a task in GHL, an appointment in the app, a note
    synced to both; a write, a quarantine entry, a review decision and a webhook event in her history."""
    conn.execute(sa.insert(person).values(person_row(
        profile, DANA, DANA_GHL, DANA_APP, "synced", T0 + timedelta(hours=1), last_name="Smith-Jones",
        winners={"last_name": {"side": "app", "reason": "latest_wins: the app's is newer", "run_id": RUN1},
                 "tags": {"side": "both", "reason": "tags merged as sets", "run_id": RUN1}})))
    conn.execute(sa.insert(staging_contact), [staged(profile, "ghl", DANA_GHL), staged(profile, "app", DANA_APP)])
    conn.execute(sa.insert(person_activity), [
        {"profile": profile, "entity": entity, "person_id": DANA, "ghl_id": ghl_id, "app_id": app_id, "sides": sides,
         "title": title, "status": status, "at_utc": at, "at_local": at.isoformat(), "zone": "UTC",
         "run_id": RUN1, "updated_at": T0}
        for entity, ghl_id, app_id, sides, title, status, at in (
            ("note", "n-1", "note_1", "both", "Asked about the family plan", None, T0 + timedelta(hours=12)),
            ("task", "t-1", None, "ghl", "Send welcome pack", "open", T0 + timedelta(days=1, hours=15)),
            ("appointment", None, "bk_1", "app", "Trial class", "confirmed", T0 + timedelta(days=3, hours=23,
                                                                                            minutes=30)))])
    conn.execute(sa.insert(sync_changelog).values(
        outbox_id=41, profile=profile, entity="contact", side="ghl", op="update", person_id=DANA, record_id="g-dana",
        before={"last_name": "Smith"}, after={"last_name": "Smith-Jones"},
        decisions=[{"field": "last_name", "winner": "app", "reason": "latest_wins: the app's is newer"}],
        status="sent", run_id=RUN1, sent_run_id=RUN2, planned_at=T0 + timedelta(hours=1),
        sent_at=T0 + timedelta(days=1, hours=1)))
    raw_id = conn.execute(sa.insert(raw_record).returning(raw_record.c.id).values(
        profile=profile, run_id=RUN2, side="ghl", entity="contact", record_key="g-dana", source_id="g-dana",
        payload={"id": "g-dana", "phone": "12"}, extracted_at=T0 + timedelta(days=1))).scalar_one()
    conn.execute(sa.insert(quarantine).values(
        profile=profile, run_id=RUN2, side="ghl", entity="contact", source_id="g-dana", rule="phone_format",
        detail="phone '12' is not a valid number", raw_id=raw_id, created_at=T0 + timedelta(days=1, hours=2)))
    conn.execute(sa.insert(review_decision).values(
        profile=profile, ghl_id="g-dana", app_id="mem_3", decision="link", decided_by="reviewer",
        decided_at=T0 - timedelta(days=1), applied_run_id=RUN1))
    inbox_id = conn.execute(sa.insert(webhook_inbox).returning(webhook_inbox.c.id).values(
        webhook_id="wh-1", location_id="loc", event_type="ContactUpdate", contact_id="g-dana", object_id="g-dana",
        event_at=T0 + timedelta(days=2), received_at=T0 + timedelta(days=2), routed=True, payload={})).scalar_one()
    conn.execute(sa.insert(webhook_done).values(profile=profile, inbox_id=inbox_id, run_id=RUN3,
                                                done_at=T0 + timedelta(days=2)))


@pytest.fixture
def warehouse(sqlite_warehouse):
    with sqlite_warehouse.begin() as conn:
        conn.execute(sa.insert(person), [
            person_row("gymdesk", 1, JOSE, None, "ghl_only", T0 + timedelta(hours=3)),
            person_row("gymdesk", 2, None, PAT, "app_only", T0 + timedelta(hours=2)),
            person_row("gymflow", 4, {**JOSE, "id": "g-jose-2"}, None, "ghl_only", T0),  # another profile's
        ])
        seed_dana(conn)
    return sqlite_warehouse


def _app(allowed: bool = True):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    app = create_app()
    for depends in (*security.LOGGED_IN, *security.READ_DAG, *security.READ_RUNS, *security.READ_TASK_LOGS):
        app.dependency_overrides[depends.dependency] = lambda: None
    app.dependency_overrides[security.may_read_task_logs] = lambda: True
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="reviewer", role="admin")
    return app


@pytest.fixture
def client(warehouse, monkeypatch):
    """A logged-in user who may read every DAG's runs; gymdesk's shop is in New York."""
    from crm_sync.web import services

    mine = services.profiles
    monkeypatch.setattr(services, "profiles", lambda: [
        p.model_copy(update={"timezone": ZONE}) if p.name == "gymdesk" else p for p in mine()])
    return TestClient(_app())


def names(answer) -> list[str]:
    return [f"{p['first_name']} {p['last_name']}" for p in answer.json()["people"]]


@pytest.mark.parametrize("typed, found", [
    ("jose", ["José García"]), ("JOSE GARCIA", ["José García"]), ("garcía", ["José García"]),
    ("(555) 010-2030", ["José García", "Pat Lee"]), ("+1 555.010.2030", ["José García", "Pat Lee"]),
    ("5550102030", ["José García", "Pat Lee"]), ("PAT@Example.org", ["Pat Lee"]), ("dana@", ["Dana Smith-Jones"]),
    ("smith-jones", ["Dana Smith-Jones"]), ("nobody", []), ("", ["José García", "Pat Lee", "Dana Smith-Jones"])])
def test_the_search_finds_a_name_an_email_or_a_phone_typed_any_way(client, typed, found):
    answer = client.get(f"/api/dags/{DAG}/people", params={"q": typed}, headers=JSON)
    assert answer.status_code == 200
    assert names(answer) == found  # newest changed first; gymflow's José is not gymdesk's
    assert answer.json()["total_entries"] == len(found)


def test_the_search_page_lists_the_matches_each_linked_to_its_person(client):
    page = client.get(f"/dags/{DAG}/people", params={"q": "(555) 010-2030"})
    assert page.status_code == 200 and 'value="(555) 010-2030"' in page.text
    assert f'href="/dags/{DAG}/people/1">José García</a>' in page.text
    assert f'href="/dags/{DAG}/people/2">Pat Lee</a>' in page.text and "Dana" not in page.text
    assert "1-2 of 2" in page.text
    assert 'Nobody\'s name, email or phone holds "zed"' in client.get(f"/dags/{DAG}/people?q=zed").text
    runs = client.get(f"/dags/{DAG}").text
    assert f'href="/dags/{DAG}/people">People</a>' in runs  # the profile's page leads to its people


def test_people_come_a_page_at_a_time_newest_changed_first(client, warehouse):
    with warehouse.begin() as conn:
        conn.execute(sa.insert(person), [
            person_row("gymdesk", 100 + n, {"id": f"g{n}", "first_name": "Member", "last_name": f"No{n}"}, None,
                       "ghl_only", T0 - timedelta(hours=n)) for n in range(60)])
    first = PersonCollection.model_validate(client.get(f"/api/dags/{DAG}/people", headers=JSON).json())
    assert (first.total_entries, first.pages, first.page, len(first.people)) == (63, 2, 1, 50)
    assert [p.person_id for p in first.people[:4]] == [1, 2, DANA, 100]
    second = client.get(f"/api/dags/{DAG}/people", params={"page": 2}, headers=JSON).json()
    assert [p["person_id"] for p in second["people"]] == [100 + n for n in range(47, 60)]
    everyone = {p.person_id for p in first.people} | {p["person_id"] for p in second["people"]}
    assert len(everyone) == 63
    assert client.get(f"/api/dags/{DAG}/people", params={"page": 9}, headers=JSON).json()["page"] == 2  # the last
    assert client.get(f"/api/dags/{DAG}/people", params={"q": "member", "per_page": 7}, headers=JSON
                      ).json()["pages"] == 9
    page = client.get(f"/dags/{DAG}/people", params={"q": "member"}).text
    assert "1-50 of 60" in page and 'href="?q=member&amp;page=2" rel="next"' in page
    assert first.people[0].url == f"/crm-sync/api/dags/{DAG}/people/1"


def test_a_persons_page_shows_both_records_and_who_won(client):
    page = client.get(f"/dags/{DAG}/people/{DANA}")
    assert page.status_code == 200
    records = page.text[page.text.index('id="records"'):page.text.index('id="activities"')]
    row = re.search(r"<tr><td>last name</td>(.*?)</tr>", records, re.DOTALL)[1]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
    assert [c.strip() for c in cells[:3]] == ["Smith", "Smith-Jones", "Smith-Jones"]  # GHL, app, merged
    assert "app (gymdesk)" in cells[3] and "latest_wins: the app&#39;s is newer" in cells[3]
    assert f'href="/dags/{DAG}/runs/{quote(RUN1, safe="")}"' in cells[3]
    assert 'class="won">Smith-Jones' in row
    tags = re.search(r"<tr><td>tags</td>(.*?)</tr>", records, re.DOTALL)[1]
    assert '<span class="side both">both</span> tags merged as sets' in tags
    assert "g-dana" in records and "mem_3" in records


def test_a_persons_timeline_holds_both_sides_newest_first_in_the_profiles_zone(client):
    page = client.get(f"/dags/{DAG}/people/{DANA}").text
    timeline = page[page.index('id="activities"'):page.index('id="history"')]
    rows = re.findall(r"<tr><td class=\"nowrap\">(.*?)</td><td>(\w+)</td><td>(.*?)</td>.*?<span class=\"side (\w+)\">"
                      r"(.*?)</span>", timeline, re.DOTALL)
    assert [(when, what, side) for when, what, _, side, _ in rows] == [
        ("2026-12-04 18:30 EST America/New_York", "appointment", "app"),
        ("2026-12-02 10:00 EST America/New_York", "task", "ghl"),
        ("2026-12-01 07:00 EST America/New_York", "note", "both")]
    assert [label for *_, label in rows] == ["app (gymdesk)", "GHL", "both"]


def test_a_persons_history_links_every_entry_to_its_run(client):
    page = client.get(f"/dags/{DAG}/people/{DANA}").text
    history = page[page.index('id="history"'):]
    kinds = re.findall(r'<tr class="(\w+)">', history)
    assert kinds == ["webhook", "quarantine", "write", "review"]  # newest first
    for run_id in (RUN3, RUN2, RUN1):
        assert f'href="/dags/{DAG}/runs/{quote(run_id, safe="")}"' in history
    assert "<del>Smith</del> &rarr; <ins>Smith-Jones</ins>" in history and "phone_format" in history
    assert "GHL webhook: ContactUpdate" in history and "link these two" in history
    write = re.search(r'<tr class="write">.*?</tr>', history, re.DOTALL)[0]
    sent_in = f'sent in <a class="run" href="/dags/{DAG}/runs/{quote(RUN2, safe="")}"'
    assert quote(RUN1, safe="") in write and sent_in in write


def test_the_persons_json_has_both_records_activities_with_their_side_and_the_history(client):
    answer = client.get(f"/api/dags/{DAG}/people/{DANA}")
    assert answer.status_code == 200
    dana = PersonDetail.model_validate(answer.json())
    assert (dana.ghl_id, dana.app_id, dana.status, dana.zone) == ("g-dana", "mem_3", "synced", ZONE)
    assert dana.records["ghl"].fields["last_name"] == "Smith"
    assert dana.records["app"].fields["last_name"] == "Smith-Jones"
    won = {f.field: f.winner for f in dana.fields if f.winner}
    assert won["last_name"].side == "app" and won["last_name"].run_id == RUN1
    assert [(a.entity, a.side) for a in dana.activities] == [("appointment", "app"), ("task", "ghl"), ("note", "both")]
    assert dana.activities[0].at_local == "2026-12-04T18:30:00-05:00"
    assert [(h.kind, h.run_id) for h in dana.history] == [("webhook", RUN3), ("quarantine", RUN2), ("write", RUN1),
                                                          ("review", RUN1)]
    assert dana.history[2].sent_run_id == RUN2 and dana.history[2].changes[0].after == "Smith-Jones"
    schema = client.get("/api/openapi.json").json()
    for path, model in (("/api/dags/{dag_id}/people", "PersonCollection"),
                        ("/api/dags/{dag_id}/people/{person_id}", "PersonDetail")):
        ok = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok["$ref"].endswith("/" + model)


def test_an_unknown_person_is_a_404_page_and_json(client):
    page = client.get(f"/dags/{DAG}/people/999", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "no person 999 of ghl_gymdesk" in page.text
    assert f'href="/dags/{DAG}"' in page.text  # the way back
    answer = client.get(f"/api/dags/{DAG}/people/999", headers={"Accept": "text/html"})
    assert answer.status_code == 404 and "no person 999" in answer.json()["detail"]
    assert client.get(f"/api/dags/{DAG}/people/4").status_code == 404  # gymflow's person, not this profile's
    assert client.get("/api/dags/not_ours/people").status_code == 404
    assert client.get(f"/api/dags/{DAG}/people/{2**70}").status_code == 422  # not a person id at all


def test_people_need_the_dags_runs(warehouse):
    """Who may not read the DAG's runs sees no person (they are records, as the review queue's are)."""
    from fastapi import HTTPException

    app = _app()

    def refuse():
        raise HTTPException(403, "Forbidden")

    for depends in security.READ_RUNS:
        app.dependency_overrides[depends.dependency] = refuse
    client = TestClient(app)
    for path in (f"/dags/{DAG}/people", f"/dags/{DAG}/people/{DANA}", f"/api/dags/{DAG}/people",
                 f"/api/dags/{DAG}/people/{DANA}"):
        answer = client.get(path, headers=JSON)
        assert answer.status_code == 403 and "Dana" not in answer.text, path


def test_every_row_of_a_run_report_links_to_its_person(client, warehouse):
    from bench.console_runs import seed

    with warehouse.begin() as conn:
        run_id = seed(conn, profile_by_name("gymdesk"), 1, landed=3, writes=4)[0]
        conn.execute(sa.insert(person), [
            person_row("gymdesk", 200 + n, {"id": f"ghl{n}"}, {"id": f"app{n}"}, "synced", T0) for n in range(12)])
    page = client.get(f"/dags/{DAG}/runs/{quote(run_id, safe='')}").text
    for table in ("writes", "quarantine"):
        listed = page[page.index(f'id="{table}"'):].split("</table>")[0]
        rows = re.findall(r"<tr><td>contact</td>.*?</tr>", listed, re.DOTALL)
        assert rows, table
        for row in rows:
            record = re.search(r"<td>(ghl|app)(\d+)<br><a class=\"person\" href=\"([^\"]+)\">", row)
            assert record, row
            assert record[3] == f"/dags/{DAG}/people/{200 + int(record[2])}"

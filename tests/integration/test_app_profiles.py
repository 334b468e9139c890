"""Each built-in app profile, run by Airflow against GHL's and the app's simulators.

Every test seeds both sides in their own formats, runs the profile's DAG (`airflow dags
test`), changes records through the apps' own APIs as their users would, runs it again,
and checks the records each simulator ends up holding: the behaviours the app's
integration guide (shared/seeds) asks for.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import APP_KEY, GHL_TOKEN, LOCATION_ID, app_connection_env, run_dag

pytestmark = [pytest.mark.integration]
PAST = "2026-11-01T09:00:00Z"


def ghl_api(sim) -> httpx.Client:
    return httpx.Client(base_url=sim.url, timeout=10,
                        headers={"Authorization": f"Bearer {GHL_TOKEN}", "Version": "2021-07-28"})


def ghl_contact(contact_id: str, email: str, first: str, last: str, **more) -> dict:
    return {"id": contact_id, "locationId": LOCATION_ID, "email": email, "firstName": first, "lastName": last,
            "tags": [], "dateAdded": PAST, "dateUpdated": PAST, **more}


def environment(profile: str, ghl_sim, app_sim, tmp_path) -> dict[str, str]:
    return {**app_connection_env(profile, ghl_sim.url, app_sim.url), "CRM_SYNC_HOME": str(tmp_path / "home"),
            "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}"}


def by_email(records: list[dict], key: str = "email") -> dict[str, dict]:
    return {(r.get(key) or "").lower(): r for r in records}


@pytest.mark.parametrize("app_sim", ["gymflow"], indirect=True)
def test_gymflow_contacts_tags_tasks_notes_and_deletes(airflow_home, tmp_path, ghl_sim, app_sim):
    ghl_sim.seed("contacts", [ghl_contact("ghlBen0000000000001", "ben@example.com", "Ben", "Okafor",
                                          tags=["member"]),
                              ghl_contact("ghlCai0000000000001", "cai@example.com", "Cai", "Lin", tags=["lead"])])
    app_sim.seed("contacts", [
        {"id": "gf-ava", "email": "ava@example.com", "phone": "+14152011001", "first_name": "Ava",
         "last_name": "Garcia", "tags": ["vip"], "deleted": False, "deleted_at": None, "created_at": PAST,
         "modified_at": PAST},
        {"id": "gf-ben", "email": "Ben@Example.com", "phone": None, "first_name": "Ben", "last_name": "Okafor",
         "tags": [], "deleted": False, "deleted_at": None, "created_at": PAST, "modified_at": PAST}])
    app_sim.seed("tasks", [{"id": "gf-t1", "contact_id": "gf-ava", "title": "Book PT session", "status": "open",
                            "due": "2026-12-01T17:00:00Z", "created_at": PAST, "modified_at": PAST}])
    app_sim.seed("notes", [{"id": "gf-n1", "contact_id": "gf-ben", "text": "Prefers morning classes",
                            "created_at": PAST, "modified_at": PAST}])
    env = environment("gymflow", ghl_sim, app_sim, tmp_path)

    run_dag(airflow_home, "ghl_gymflow", env)

    people = by_email(ghl_sim.records("contacts"))
    ava, ben = people["ava@example.com"], people["ben@example.com"]
    assert ava["tags"] == ["vip"] and ava["source"] == "GymFlow" and ava["phone"] == "+14152011001"
    gymflow_people = by_email(app_sim.records("contacts"))
    assert sorted(gymflow_people["ben@example.com"]["tags"]) == ["member"]
    cai = gymflow_people["cai@example.com"]  # only in GHL: created in GymFlow
    assert (cai["first_name"], cai["last_name"], cai["tags"]) == ("Cai", "Lin", ["lead"])
    assert [(t["contactId"], t["title"], t["completed"], t["dueDate"][:16]) for t in ghl_sim.records("tasks")] == [
        (ava["id"], "Book PT session", False, "2026-12-01T17:00")]
    assert [(n["contactId"], n["body"]) for n in ghl_sim.records("notes")] == [(ben["id"], "Prefers morning classes")]

    # Between runs: GymFlow adds a tag to Ava, completes her task and deletes Ben; GHL removes Ava's "vip".
    gymflow = httpx.Client(base_url=app_sim.url, headers={"Authorization": f"Bearer {APP_KEY}"}, timeout=10)
    gymflow.put("/api/v2/contacts/gf-ava", json={"tags": ["vip", "trial"]}).raise_for_status()
    gymflow.put("/api/v2/tasks/gf-t1", json={"status": "completed"}).raise_for_status()
    gymflow.delete("/api/v2/contacts/gf-ben").raise_for_status()
    ghl_api(ghl_sim).request("DELETE", f"/contacts/{ava['id']}/tags", json={"tags": ["vip"]}).raise_for_status()
    ghl_sim.reset_calls()

    run_dag(airflow_home, "ghl_gymflow", env)

    people = by_email(ghl_sim.records("contacts"))
    assert people["ava@example.com"]["tags"] == ["trial"]  # added in GymFlow, removed in GHL: both kept
    assert by_email(app_sim.records("contacts"))["ava@example.com"]["tags"] == ["trial"]
    assert "ben@example.com" in people, "a GymFlow delete must never hard-delete the GHL contact"
    assert "gymflow-deleted" in people["ben@example.com"]["tags"]
    assert [t["completed"] for t in ghl_sim.records("tasks")] == [True]
    calls = ghl_sim.calls()
    assert calls.get("PUT /contacts/{contact_id}/tasks/{task_id}/completed") == 1, calls
    assert not calls.get("DELETE /contacts/{contact_id}"), calls


@pytest.mark.parametrize("app_sim", ["mygadgetrepairs"], indirect=True)
def test_mygadgetrepairs_tasks_notes_and_appointments(airflow_home, tmp_path, ghl_sim, app_sim):
    stamp = "2026-11-01 09:00:00"
    app_sim.seed("customers", [{"id": 101, "ref": "CUS-101", "email": "dana@example.com", "mobile": "415-201-1004",
                                "phone": None, "company": "Fix-it Cafe",
                                "name_parts": {"first_name": "Dana", "middle_name": None, "last_name": "Reyes"},
                                "created_date": stamp, "last_updated": stamp}])
    app_sim.seed("tasks", [{"id": 501, "customer": {"internal_id": 101}, "title": "Replace screen",
                            "description": "iPhone 14, cracked", "dueDate": "2026-12-01", "status": "Pending",
                            "created_date": stamp, "last_updated": stamp},
                           # A status the profile does not map: quarantined, naming the profile key.
                           {"id": 502, "customer": {"internal_id": 101}, "title": "Order part", "status": "On hold",
                            "created_date": stamp, "last_updated": stamp}])
    ghl_sim.seed("contacts", [ghl_contact("ghlEli0000000000001", "eli@example.com", "Eli", "Park")])
    ghl_sim.seed("notes", [{"id": "ghlNote000000000001", "contactId": "ghlEli0000000000001",
                            "body": "Wants a quote for a battery", "dateAdded": PAST}])
    ghl_sim.seed("appointments", [{"id": "ghlAppt000000000001", "locationId": LOCATION_ID, "calendarId": "cal1",
                                   "contactId": "ghlEli0000000000001", "title": "Drop-off",
                                   "startTime": "2026-12-05T14:30:00Z", "endTime": "2026-12-05T15:00:00Z",
                                   "appointmentStatus": "confirmed", "dateAdded": PAST, "dateUpdated": PAST}])
    env = environment("mygadgetrepairs", ghl_sim, app_sim, tmp_path)

    run_dag(airflow_home, "ghl_mygadgetrepairs", env)

    people = by_email(ghl_sim.records("contacts"))
    dana = people["dana@example.com"]
    assert (dana["firstName"], dana["lastName"], dana["phone"], dana["companyName"]) == (
        "Dana", "Reyes", "+14152011004", "Fix-it Cafe")
    assert [(t["contactId"], t["title"], t["body"], t["dueDate"][:10], t["completed"])
            for t in ghl_sim.records("tasks")] == [(dana["id"], "Replace screen", "iPhone 14, cracked", "2026-12-01",
                                                    False)]
    report = json.loads(next((tmp_path / "home" / "reports" / "ghl_mygadgetrepairs").glob("*.json")).read_text())
    assert [(q["entity"], q["source_id"], q["rule"]) for q in report["quarantine"]] == [("task", "502", "value_unmapped")]
    assert "entities.task.fields.completed (app field 'status')" in report["quarantine"][0]["detail"]
    eli = by_email(app_sim.records("customers"))["eli@example.com"]
    assert eli["name_parts"]["first_name"] == "Eli" and eli["name_parts"]["last_name"] == "Park"
    assert [(n["customer"]["internal_id"], n["comment"]) for n in app_sim.records("notes")] == [
        (eli["id"], "Wants a quote for a battery")]
    assert [(a["customer"]["internal_id"], a["title"], a["date"], a["time"], a["status"])
            for a in app_sim.records("appointments")] == [(eli["id"], "Drop-off", "05-Dec-2026", "14:30", "Booked")]

    # The repair is done: the shop completes the task in MyGadgetRepairs.
    mgr = httpx.Client(base_url=app_sim.url, headers={"Authorization": APP_KEY}, timeout=10)
    mgr.put("/v1/projectTask/501", json={"status": "Completed"}).raise_for_status()
    ghl_sim.reset_calls()

    run_dag(airflow_home, "ghl_mygadgetrepairs", env)

    assert [t["completed"] for t in ghl_sim.records("tasks")] == [True]
    assert ghl_sim.calls().get("PUT /contacts/{contact_id}/tasks/{task_id}/completed") == 1, ghl_sim.calls()


@pytest.mark.parametrize("app_sim", ["gist"], indirect=True)
def test_gist_new_contact_with_tasks_and_completion(airflow_home, tmp_path, ghl_sim, app_sim):
    now = int(datetime.now(UTC).timestamp())
    app_sim.seed("contacts", [{"id": 1, "type": "user", "name": "Ava María Garcia", "email": "ava@example.com",
                               "user_id": "u1", "phone": None, "created_at": now - 3600, "updated_at": now - 3600,
                               "last_seen_at": now - 3600, "tags": [], "custom_properties": {}}])
    app_sim.seed("tasks", [{"id": 11, "contact_id": 1, "title": "Onboarding call", "status": "open",
                            "due_at": now + 86_400, "created_at": now - 3600, "updated_at": now - 3600}])
    ghl_sim.seed("contacts", [ghl_contact("ghlLeo0000000000001", "leo@example.com", "Leo", "Martin")])
    env = environment("gist", ghl_sim, app_sim, tmp_path)

    run_dag(airflow_home, "ghl_gist", env)

    ava = by_email(ghl_sim.records("contacts"))["ava@example.com"]
    assert (ava["firstName"], ava["lastName"]) == ("Ava María", "Garcia")
    assert [(t["contactId"], t["title"], t["completed"]) for t in ghl_sim.records("tasks")] == [
        (ava["id"], "Onboarding call", False)]
    assert by_email(app_sim.records("contacts"))["leo@example.com"]["name"] == "Leo Martin"

    gist = httpx.Client(base_url=app_sim.url, headers={"Authorization": f"Bearer {APP_KEY}"}, timeout=10)
    gist.put("/tasks/11", json={"task": {"status": "completed"}}).raise_for_status()
    ghl_sim.reset_calls()

    run_dag(airflow_home, "ghl_gist", env)

    assert [t["completed"] for t in ghl_sim.records("tasks")] == [True]
    assert ghl_sim.calls().get("PUT /contacts/{contact_id}/tasks/{task_id}/completed") == 1, ghl_sim.calls()


@pytest.mark.parametrize("app_sim", ["generic"], indirect=True)
def test_generic_app_with_oauth_contacts_tasks_and_notes_both_ways(airflow_home, tmp_path, ghl_sim, app_sim):
    app_sim.seed("contacts", [{"contactId": "c-1", "email": "ava@example.com", "name": "Ava Garcia",
                               "phone": None, "lastUpdated": PAST}])
    app_sim.seed("tasks", [{"taskId": "t-1", "contactId": "c-1", "title": "Call back", "status": "done",
                            "dueDate": None, "lastUpdated": PAST}])
    app_sim.seed("notes", [{"noteId": "n-1", "contactId": "c-1", "content": "Met at the expo",
                            "timestamp": "2026-10-30T12:00:00Z", "lastUpdated": PAST}])
    ghl_sim.seed("contacts", [ghl_contact("ghlLeo0000000000001", "leo@example.com", "Leo", "Martin")])
    ghl_sim.seed("notes", [{"id": "ghlNote000000000001", "contactId": "ghlLeo0000000000001",
                            "body": "VIP customer", "dateAdded": PAST}])
    ghl_sim.seed("tasks", [{"id": "ghlTask000000000001", "contactId": "ghlLeo0000000000001", "title": "Renewal",
                            "body": None, "dueDate": "2026-12-10T09:00:00Z", "completed": False, "dateAdded": PAST}])
    env = environment("generic", ghl_sim, app_sim, tmp_path)

    run_dag(airflow_home, "ghl_generic", env)

    ava = by_email(ghl_sim.records("contacts"))["ava@example.com"]
    leo = by_email(app_sim.records("contacts"))["leo@example.com"]
    assert leo["name"] == "Leo Martin"
    ghl_tasks = {t["title"]: t for t in ghl_sim.records("tasks")}
    assert ghl_tasks["Call back"]["contactId"] == ava["id"] and ghl_tasks["Call back"]["completed"] is True
    app_tasks = {t["title"]: t for t in app_sim.records("tasks")}
    assert (app_tasks["Renewal"]["contactId"], app_tasks["Renewal"]["status"]) == (leo["contactId"], "open")
    assert app_tasks["Renewal"]["dueDate"].startswith("2026-12-10T09:00")
    assert {n["body"]: n["contactId"] for n in ghl_sim.records("notes")} == {
        "VIP customer": "ghlLeo0000000000001", "Met at the expo": ava["id"]}
    assert {n["content"]: n["contactId"] for n in app_sim.records("notes")} == {
        "Met at the expo": "c-1", "VIP customer": leo["contactId"]}
    assert app_sim.calls().get("POST /oauth/token", 0) >= 1


@pytest.mark.parametrize("app_sim", ["gymdesk"], indirect=True)
def test_gymdesk_lead_gets_tasks_and_ghl_notes_and_appointments_reach_the_calendar(
        airflow_home, tmp_path, ghl_sim, app_sim):
    app_sim.seed("members", [{"id": "mem_1", "first_name": "Lena", "last_name": "Silva", "email": "lena@example.com",
                              "phone": None, "company": "Peak Physio", "lead_source": "Website form",
                              "status": "lead", "created_at": PAST, "updated_at": PAST}])
    # Notes go one way only (direction ghl_to_app): this front-desk note stays in Gymdesk.
    app_sim.seed("notes", [{"id": "note_1", "member_id": "mem_1", "content": "Desk only", "noted_at": PAST,
                            "created_at": PAST, "updated_at": PAST}])
    ghl_sim.seed("contacts", [ghl_contact("ghlOmar000000000001", "omar@example.com", "Omar", "Khan",
                                          source="Walk-in")])
    ghl_sim.seed("notes", [{"id": "ghlNote000000000001", "contactId": "ghlOmar000000000001",
                            "body": "Knee injury: no squats", "dateAdded": "2026-11-02T10:15:00Z"}])
    ghl_sim.seed("appointments", [{"id": "ghlAppt000000000001", "locationId": LOCATION_ID, "calendarId": "cal1",
                                   "contactId": "ghlOmar000000000001", "title": "Trial class",
                                   "startTime": "2026-12-03T18:00:00Z", "endTime": "2026-12-03T19:00:00Z",
                                   "appointmentStatus": "confirmed", "dateAdded": PAST, "dateUpdated": PAST}])
    env = environment("gymdesk", ghl_sim, app_sim, tmp_path)
    started = datetime.now(UTC)

    run_dag(airflow_home, "ghl_gymdesk", env)

    lena = by_email(ghl_sim.records("contacts"))["lena@example.com"]
    assert (lena["source"], lena["companyName"]) == ("Website form", "Peak Physio")
    tasks = sorted(ghl_sim.records("tasks"), key=lambda t: t["dueDate"])
    assert [(t["contactId"], t["title"], t["completed"]) for t in tasks] == [
        (lena["id"], "Call new lead", False), (lena["id"], "Follow-up reminder", False)]
    due = [datetime.fromisoformat(t["dueDate"].replace("Z", "+00:00")) - started for t in tasks]
    assert timedelta(hours=23) < due[0] < timedelta(hours=25) and timedelta(hours=71) < due[1] < timedelta(hours=73)
    # Tasks go both ways: the same run puts the lead's new tasks on the Gymdesk member too, linked to GHL's.
    desk_tasks = sorted(app_sim.records("tasks"), key=lambda t: t["due_at"])
    assert [(t["member_id"], t["title"], t["description"], t["status"], t["due_at"]) for t in desk_tasks] == [
        ("mem_1", t["title"], t["body"], "open", t["dueDate"]) for t in tasks]
    assert task_links(env) == {(g["id"], d["id"]) for g, d in zip(tasks, desk_tasks, strict=True)}
    omar = by_email(app_sim.records("members"))["omar@example.com"]
    assert sorted((n["member_id"], n["content"], n["noted_at"]) for n in app_sim.records("notes")) == [
        ("mem_1", "Desk only", PAST), (omar["id"], "Knee injury: no squats", "2026-11-02T10:15:00Z")]
    assert [n["body"] for n in ghl_sim.records("notes")] == ["Knee injury: no squats"]
    assert [(b["member_id"], b["title"], b["starts_at"], b["ends_at"], b["status"])
            for b in app_sim.records("bookings")] == [
        (omar["id"], "Trial class", "2026-12-03T18:00:00Z", "2026-12-03T19:00:00Z", "booked")]
    ghl_sim.reset_calls()
    app_sim.reset_calls()
    run_dag(airflow_home, "ghl_gymdesk", env)

    # The first run converged: the next one writes nothing and plans no task.
    writes = {k: v for k, v in {**ghl_sim.calls(), **app_sim.calls()}.items()
              if k.split(" ")[0] in ("POST", "PUT", "PATCH", "DELETE") and "search" not in k}
    assert writes == {}, writes
    assert len(ghl_sim.records("tasks")) == 2 and len(app_sim.records("tasks")) == 2
    with sa.create_engine(env["WAREHOUSE_URL"]).connect() as conn:
        [stats] = conn.execute(sa.text(
            "SELECT stats FROM run_log WHERE step = 'reconcile' ORDER BY finished_at DESC")).first()
    assert "task" not in json.loads(stats)["planned_by_entity"]


def task_links(env: dict[str, str]) -> set[tuple[str | None, str | None]]:
    """(GHL id, app id) of every task link in the run's warehouse."""
    with sa.create_engine(env["WAREHOUSE_URL"]).connect() as conn:
        return set(conn.execute(sa.text("SELECT ghl_id, app_id FROM xref WHERE entity = 'task'")).all())


@pytest.mark.parametrize("app_sim", ["generic"], indirect=True)
def test_a_contact_that_keeps_the_other_sides_id_is_linked_to_it_before_any_email_match(
        airflow_home, tmp_path, ghl_sim, app_sim):
    # Mia changed her email in the app after an earlier integration tied her to GHL; two app
    # records both claim Noor's GHL id: never guessed, quarantined with both candidates.
    ghl_sim.seed("contacts", [ghl_contact("ghlMia0000000000001", "mia@work.example.com", "Mia", "Lopez"),
                              ghl_contact("ghlNoor000000000001", "noor@example.com", "Noor", "Haddad")])
    app_sim.seed("contacts", [
        {"contactId": "c-1", "email": "mia@home.example.com", "name": "Mia Lopez", "phone": None,
         "ghlContactId": "ghlMia0000000000001", "lastUpdated": "2026-11-02T09:00:00Z"},
        {"contactId": "c-2", "email": "noor@example.com", "name": "Noor Haddad", "phone": None,
         "ghlContactId": "ghlNoor000000000001", "lastUpdated": PAST},
        {"contactId": "c-3", "email": "noor.h@example.com", "name": "Noor H", "phone": None,
         "ghlContactId": "ghlNoor000000000001", "lastUpdated": PAST}])
    env = environment("generic", ghl_sim, app_sim, tmp_path)

    run_dag(airflow_home, "ghl_generic", env)

    ghl_people = by_email(ghl_sim.records("contacts"))
    assert sorted(ghl_people) == ["mia@home.example.com", "noor@example.com"]  # no duplicate Mia, no guess for Noor
    assert ghl_people["mia@home.example.com"]["id"] == "ghlMia0000000000001"  # the app's newer email won
    assert sorted(c["contactId"] for c in app_sim.records("contacts")) == ["c-1", "c-2", "c-3"]
    report = json.loads(next((tmp_path / "home" / "reports" / "ghl_generic").glob("*.json")).read_text())
    ambiguous = {(q["side"], q["source_id"]): q["detail"] for q in report["quarantine"] if q["rule"] == "ambiguous_match"}
    assert set(ambiguous) == {("ghl", "ghlNoor000000000001"), ("app", "c-2"), ("app", "c-3")}
    assert "app:c-2 by external id" in ambiguous[("ghl", "ghlNoor000000000001")]
    assert "app:c-3 by external id" in ambiguous[("ghl", "ghlNoor000000000001")]

"""Tasks, notes and appointments after their create: edits, completion, cancellation and deletes,
run by Airflow against GHL's and the app's simulators.

Each test seeds both sides, runs the profile's DAG, changes children through each side's own API
as its users would, runs it again and checks what each simulator ends up holding.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from crm_sync.paths import PROFILES_DIR

from tests.conftest import APP_KEY, CLIENT_ID, CLIENT_SECRET, LOCATION_ID, run_dag
from tests.integration.test_app_profiles import PAST, by_email, environment, ghl_api, ghl_contact

pytestmark = [pytest.mark.integration]
OMAR, PIA, RAJ = "ghlOmar000000000001", "ghlPia0000000000001", "ghlRaj0000000000001"
GHL_TASK, GHL_NOTE, GHL_APPT = "ghlTask000000000001", "ghlNote000000000001", "ghlAppt000000000001"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def book(ghl_sim, **fields) -> None:
    """Book or change an appointment as GHL's calendar does (its contact is not touched)."""
    httpx.post(f"{ghl_sim.url}/_sim/appointments", json={"locationId": LOCATION_ID, **fields},
               timeout=10).raise_for_status()


@pytest.mark.slow  # about two minutes: in CI's test-slow
@pytest.mark.parametrize("app_sim", ["gymdesk"], indirect=True)
def test_gymdesk_task_edits_both_ways_note_edit_and_appointments_rescheduled_cancelled_deleted(
        airflow_home, tmp_path, ghl_sim, app_sim):
    start = (datetime.now(UTC) + timedelta(days=10)).replace(hour=18, minute=0, second=0, microsecond=0)
    ghl_sim.seed("contacts", [ghl_contact(OMAR, "omar@example.com", "Omar", "Khan"),
                              ghl_contact(PIA, "pia@example.com", "Pia", "Lund"),
                              ghl_contact(RAJ, "raj@example.com", "Raj", "Rao")])
    ghl_sim.seed("tasks", [{"id": GHL_TASK, "contactId": OMAR, "title": "Call Omar", "body": "About the trial",
                            "dueDate": "2026-12-01T10:00:00Z", "completed": False, "assignedTo": "user-ana",
                            "dateAdded": PAST}])
    ghl_sim.seed("notes", [{"id": GHL_NOTE, "contactId": OMAR, "body": "Knee injury: no squats", "dateAdded": PAST}])
    book(ghl_sim, id=GHL_APPT, calendarId="cal1", contactId=PIA, title="Trial class", startTime=iso(start),
         endTime=iso(start + timedelta(hours=1)), appointmentStatus="confirmed")
    book(ghl_sim, id="ghlAppt000000000002", calendarId="cal1", contactId=PIA, title="Intro call",
         startTime=iso(start + timedelta(days=2)), endTime=iso(start + timedelta(days=2, hours=1)),
         appointmentStatus="confirmed")
    book(ghl_sim, id="ghlAppt000000000003", calendarId="cal1", contactId=RAJ, title="Swim lesson",
         startTime=iso(start), endTime=iso(start + timedelta(hours=1)), appointmentStatus="confirmed")
    app_sim.seed("members", [{"id": "mem_1", "first_name": "Lena", "last_name": "Silva", "email": "lena@example.com",
                              "phone": None, "company": None, "lead_source": None, "status": "active",
                              "created_at": PAST, "updated_at": PAST}])
    app_sim.seed("tasks", [{"id": "tsk_1", "member_id": "mem_1", "title": "Renew membership",
                            "description": "Yearly plan", "due_at": "2026-12-05T09:00:00Z", "status": "open",
                            "assignee": "user-ana", "created_at": PAST, "updated_at": PAST}])
    env = environment("gymdesk", ghl_sim, app_sim, tmp_path)

    run_dag(airflow_home, "ghl_gymdesk", env)

    omar = by_email(app_sim.records("members"))["omar@example.com"]
    lena = by_email(ghl_sim.records("contacts"))["lena@example.com"]
    assert sorted((t["member_id"], t["title"], t["assignee"]) for t in app_sim.records("tasks")) == [
        ("mem_1", "Renew membership", "user-ana"), (omar["id"], "Call Omar", "user-ana")]
    assert {t["title"]: (t["contactId"], t["assignedTo"]) for t in ghl_sim.records("tasks")}["Renew membership"] == (
        lena["id"], "user-ana")
    bookings = {b["title"]: b for b in app_sim.records("bookings")}
    assert (bookings["Trial class"]["starts_at"], bookings["Trial class"]["status"]) == (iso(start), "booked")
    assert bookings["Intro call"]["status"] == "booked"

    # GHL: the task is reworded, moved and reassigned, the note corrected (a note edit is seen when
    # its contact next changes: Omar's phone), the class moved a day later. Gymdesk: Lena's task edited.
    ghl = ghl_api(ghl_sim)
    ghl.put(f"/contacts/{OMAR}/tasks/{GHL_TASK}", json={
        "title": "Call Omar back", "body": "Trial went well", "dueDate": "2026-12-02T15:00:00Z",
        "assignedTo": "user-ben"}).raise_for_status()
    ghl.put(f"/contacts/{OMAR}/notes/{GHL_NOTE}", json={"body": "Knee healed: squats are fine"}).raise_for_status()
    ghl.put(f"/contacts/{OMAR}", json={"phone": "+14155550123"}).raise_for_status()
    moved = start + timedelta(days=1)
    book(ghl_sim, id=GHL_APPT, contactId=PIA, startTime=iso(moved), endTime=iso(moved + timedelta(hours=1)))
    gymdesk = httpx.Client(base_url=app_sim.url, headers={"X-API-Key": APP_KEY}, timeout=10)
    gymdesk.patch("/v1/tasks/tsk_1", json={"data": {"title": "Renew yearly membership", "description": "Offer 10% off",
                                                    "due_at": "2026-12-06T09:00:00Z", "assignee": "user-cy"}}
                  ).raise_for_status()

    run_dag(airflow_home, "ghl_gymdesk", env)

    app_tasks = {t["member_id"]: t for t in app_sim.records("tasks")}
    assert (app_tasks[omar["id"]]["title"], app_tasks[omar["id"]]["description"],
            app_tasks[omar["id"]]["due_at"][:16], app_tasks[omar["id"]]["assignee"]) == (
        "Call Omar back", "Trial went well", "2026-12-02T15:00", "user-ben")
    ghl_tasks = {t["contactId"]: t for t in ghl_sim.records("tasks")}
    assert (ghl_tasks[lena["id"]]["title"], ghl_tasks[lena["id"]]["body"], ghl_tasks[lena["id"]]["dueDate"][:16],
            ghl_tasks[lena["id"]]["assignedTo"]) == (
        "Renew yearly membership", "Offer 10% off", "2026-12-06T09:00", "user-cy")
    assert [n["content"] for n in app_sim.records("notes")] == ["Knee healed: squats are fine"]
    booking = {b["title"]: b for b in app_sim.records("bookings")}["Trial class"]
    assert (booking["starts_at"], booking["ends_at"], booking["status"]) == (
        iso(moved), iso(moved + timedelta(hours=1)), "booked")

    # GHL cancels the class and deletes the intro call: on_delete archive is Gymdesk's soft form, cancelled.
    # Raj is deleted in GHL: his appointments cannot be read, which must neither fail the run nor
    # look like their deletion.
    book(ghl_sim, id=GHL_APPT, contactId=PIA, appointmentStatus="cancelled")
    httpx.delete(f"{ghl_sim.url}/_sim/appointments/ghlAppt000000000002", timeout=10).raise_for_status()
    ghl.delete(f"/contacts/{RAJ}").raise_for_status()

    run_dag(airflow_home, "ghl_gymdesk", env)

    bookings = {b["title"]: b for b in app_sim.records("bookings")}
    assert (bookings["Trial class"]["starts_at"], bookings["Trial class"]["status"]) == (iso(moved), "cancelled")
    assert bookings["Intro call"]["status"] == "cancelled"
    assert bookings["Swim lesson"]["status"] == "booked"
    assert len(app_sim.records("bookings")) == 3


@pytest.mark.parametrize("app_sim", ["mygadgetrepairs"], indirect=True)
def test_mygadgetrepairs_task_and_comment_edits_reach_ghl(airflow_home, tmp_path, ghl_sim, app_sim):
    stamp = "2026-11-01 09:00:00"
    app_sim.seed("customers", [{"id": 101, "ref": "CUS-101", "email": "dana@example.com", "mobile": None,
                                "phone": None, "company": None,
                                "name_parts": {"first_name": "Dana", "middle_name": None, "last_name": "Reyes"},
                                "created_date": stamp, "last_updated": stamp}])
    app_sim.seed("tasks", [{"id": 501, "customer": {"internal_id": 101}, "title": "Replace screen",
                            "description": "iPhone 14, cracked", "dueDate": "2026-12-01", "status": "Pending",
                            "created_date": stamp, "last_updated": stamp}])
    app_sim.seed("notes", [{"id": 701, "customer": {"internal_id": 101}, "comment": "Left the phone at the desk",
                            "created_date": stamp, "last_updated": stamp}])
    env = environment("mygadgetrepairs", ghl_sim, app_sim, tmp_path)

    run_dag(airflow_home, "ghl_mygadgetrepairs", env)

    assert [n["body"] for n in ghl_sim.records("notes")] == ["Left the phone at the desk"]
    mgr = httpx.Client(base_url=app_sim.url, headers={"Authorization": APP_KEY}, timeout=10)
    mgr.put("/v1/projectTask/501", json={"title": "Replace screen and battery", "description": "Battery at 71%",
                                         "dueDate": "2026-12-03"}).raise_for_status()
    mgr.put("/v1/ticketComment/701", json={"comment": "Phone collected from the desk"}).raise_for_status()

    run_dag(airflow_home, "ghl_mygadgetrepairs", env)

    assert [(t["title"], t["body"], t["dueDate"][:10], t["completed"]) for t in ghl_sim.records("tasks")] == [
        ("Replace screen and battery", "Battery at 71%", "2026-12-03", False)]
    assert [n["body"] for n in ghl_sim.records("notes")] == ["Phone collected from the desk"]


def token(app_sim) -> str:
    """An access token of the generic app, as its OAuth client gets one."""
    answer = httpx.post(f"{app_sim.url}/oauth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                            "client_secret": CLIENT_SECRET}, timeout=10)
    return answer.raise_for_status().json()["access_token"]


def writes(*sims) -> dict[str, int]:
    return {k: v for sim in sims for k, v in sim.calls().items()
            if k.split(" ")[0] in ("POST", "PUT", "PATCH", "DELETE") and "search" not in k and "oauth" not in k}


@pytest.mark.slow  # about two minutes: in CI's test-slow
@pytest.mark.parametrize("app_sim", ["generic"], indirect=True)
def test_generic_deletes_of_tasks_and_notes_follow_on_delete_archive_both_ways(airflow_home, tmp_path, ghl_sim,
                                                                                 app_sim):
    leo = "ghlLeo0000000000001"
    app_sim.seed("contacts", [{"contactId": "c-1", "email": "ava@example.com", "name": "Ava Garcia",
                               "phone": None, "lastUpdated": PAST}])
    app_sim.seed("tasks", [{"taskId": f"t-{i}", "contactId": "c-1", "title": title, "status": "open",
                            "dueDate": None, "archived": False, "lastUpdated": PAST}
                           for i, title in ((1, "Call back"), (2, "Send contract"))])
    app_sim.seed("notes", [{"noteId": f"n-{i}", "contactId": "c-1", "content": content, "archived": False,
                            "timestamp": PAST, "lastUpdated": PAST}
                           for i, content in ((1, "Met at the expo"), (2, "Prefers email"))])
    ghl_sim.seed("contacts", [ghl_contact(leo, "leo@example.com", "Leo", "Martin")])
    ghl_sim.seed("tasks", [{"id": f"ghlTask00000000000{i}", "contactId": leo, "title": title, "body": None,
                            "dueDate": "2026-12-10T09:00:00Z", "completed": False, "dateAdded": PAST}
                           for i, title in ((1, "Renewal"), (2, "Upsell"))])
    ghl_sim.seed("notes", [{"id": f"ghlNote00000000000{i}", "contactId": leo, "body": body, "dateAdded": PAST}
                           for i, body in ((1, "VIP customer"), (2, "Pays yearly"))])
    env = environment("generic", ghl_sim, app_sim, tmp_path)

    run_dag(airflow_home, "ghl_generic", env)

    assert sorted(t["title"] for t in ghl_sim.records("tasks")) == ["Call back", "Renewal", "Send contract", "Upsell"]
    assert len(app_sim.records("notes")) == 4
    # The app archives Ava's first task and note; GHL deletes Leo's first task and note (and edits Leo:
    # GHL's deletes are seen where a contact's complete child lists are read, i.e. when it changed).
    generic = httpx.Client(base_url=app_sim.url, timeout=10, headers={"Authorization": f"Bearer {token(app_sim)}"})
    generic.delete("/api/tasks/t-1").raise_for_status()
    generic.delete("/api/notes/n-1").raise_for_status()
    ghl = ghl_api(ghl_sim)
    ghl.delete(f"/contacts/{leo}/tasks/ghlTask000000000001").raise_for_status()
    ghl.delete(f"/contacts/{leo}/notes/ghlNote000000000001").raise_for_status()
    ghl.put(f"/contacts/{leo}", json={"companyName": "Martin & Co"}).raise_for_status()
    ghl_sim.reset_calls()
    app_sim.reset_calls()

    run_dag(airflow_home, "ghl_generic", env)

    # on_delete archive: GHL has no soft delete, so the task is completed and the note marked, not removed.
    assert {t["title"]: t["completed"] for t in ghl_sim.records("tasks")} == {
        "Call back": True, "Send contract": False, "Upsell": False}
    assert sorted(n["body"] for n in ghl_sim.records("notes")) == [
        "Pays yearly", "Prefers email", "[deleted in generic] Met at the expo"]
    # The app archives (its own soft delete) what GHL deleted; nothing is recreated on either side.
    assert {t["title"]: t["archived"] for t in app_sim.records("tasks")} == {
        "Call back": True, "Send contract": False, "Renewal": True, "Upsell": False}
    assert {n["content"]: n["archived"] for n in app_sim.records("notes")} == {
        "Met at the expo": True, "Prefers email": False, "VIP customer": True, "Pays yearly": False}
    assert not ghl_sim.calls().get("DELETE /contacts/{contact_id}/tasks/{task_id}"), ghl_sim.calls()
    ghl_sim.reset_calls()
    app_sim.reset_calls()

    run_dag(airflow_home, "ghl_generic", env)

    assert writes(ghl_sim, app_sim) == {}, "a delete is applied once and nothing deleted comes back"
    assert len(ghl_sim.records("tasks")) == 3 and len(app_sim.records("tasks")) == 4


@pytest.mark.parametrize("app_sim", ["gymflow"], indirect=True)
def test_on_delete_delete_calls_the_apps_delete_for_a_task_deleted_in_ghl(airflow_home, tmp_path, ghl_sim, app_sim):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (PROFILES_DIR / "gymflow.yaml").read_text()
    (profiles / "gymflow.yaml").write_text(text.replace("  task:\n    direction: both\n",
                                                        "  task:\n    direction: both\n    on_delete: delete\n"))
    assert "on_delete: delete" in (profiles / "gymflow.yaml").read_text()
    ben = "ghlBen0000000000001"
    ghl_sim.seed("contacts", [ghl_contact(ben, "ben@example.com", "Ben", "Okafor")])
    ghl_sim.seed("tasks", [{"id": f"ghlTask00000000000{i}", "contactId": ben, "title": title, "body": None,
                            "dueDate": "2026-12-10T09:00:00Z", "completed": False, "dateAdded": PAST}
                           for i, title in ((1, "Book PT session"), (2, "Send invoice"))])
    env = {**environment("gymflow", ghl_sim, app_sim, tmp_path), "CRM_SYNC_PROFILES_DIR": str(profiles)}

    run_dag(airflow_home, "ghl_gymflow", env)

    assert sorted(t["title"] for t in app_sim.records("tasks")) == ["Book PT session", "Send invoice"]
    ghl = ghl_api(ghl_sim)
    ghl.delete(f"/contacts/{ben}/tasks/ghlTask000000000001").raise_for_status()
    ghl.put(f"/contacts/{ben}", json={"companyName": "Okafor Ltd"}).raise_for_status()
    app_sim.reset_calls()

    run_dag(airflow_home, "ghl_gymflow", env)

    assert [t["title"] for t in app_sim.records("tasks")] == ["Send invoice"]
    assert app_sim.calls().get("DELETE /api/v2/tasks/{task_id}") == 1, app_sim.calls()
    assert [t["title"] for t in ghl_sim.records("tasks")] == ["Send invoice"], "nothing deleted comes back"

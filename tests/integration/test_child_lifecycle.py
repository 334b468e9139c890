"""Tasks, notes and appointments after their create: edits, completion, cancellation and deletes,
run by Airflow against GHL's and the app's simulators.

Each test seeds both sides, runs the profile's DAG, changes children through each side's own API
as its users would, runs it again and checks what each simulator ends up holding.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import APP_KEY, LOCATION_ID, run_dag
from tests.integration.test_app_profiles import PAST, by_email, environment, ghl_api, ghl_contact

pytestmark = [pytest.mark.integration]
OMAR, PIA = "ghlOmar000000000001", "ghlPia0000000000001"
GHL_TASK, GHL_NOTE, GHL_APPT = "ghlTask000000000001", "ghlNote000000000001", "ghlAppt000000000001"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def book(ghl_sim, **fields) -> None:
    """Book or change an appointment as GHL's calendar does (its contact is not touched)."""
    httpx.post(f"{ghl_sim.url}/_sim/appointments", json={"locationId": LOCATION_ID, **fields},
               timeout=10).raise_for_status()


@pytest.mark.parametrize("app_sim", ["gymdesk"], indirect=True)
def test_gymdesk_task_edits_both_ways_note_edit_and_appointment_rescheduled_then_cancelled(
        airflow_home, tmp_path, ghl_sim, app_sim):
    start = (datetime.now(UTC) + timedelta(days=10)).replace(hour=18, minute=0, second=0, microsecond=0)
    ghl_sim.seed("contacts", [ghl_contact(OMAR, "omar@example.com", "Omar", "Khan"),
                              ghl_contact(PIA, "pia@example.com", "Pia", "Lund")])
    ghl_sim.seed("tasks", [{"id": GHL_TASK, "contactId": OMAR, "title": "Call Omar", "body": "About the trial",
                            "dueDate": "2026-12-01T10:00:00Z", "completed": False, "assignedTo": "user-ana",
                            "dateAdded": PAST}])
    ghl_sim.seed("notes", [{"id": GHL_NOTE, "contactId": OMAR, "body": "Knee injury: no squats", "dateAdded": PAST}])
    book(ghl_sim, id=GHL_APPT, calendarId="cal1", contactId=PIA, title="Trial class", startTime=iso(start),
         endTime=iso(start + timedelta(hours=1)), appointmentStatus="confirmed")
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
    [booking] = app_sim.records("bookings")
    assert (booking["title"], booking["starts_at"], booking["status"]) == ("Trial class", iso(start), "booked")

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
    [booking] = app_sim.records("bookings")
    assert (booking["starts_at"], booking["ends_at"], booking["status"]) == (
        iso(moved), iso(moved + timedelta(hours=1)), "booked")

    book(ghl_sim, id=GHL_APPT, contactId=PIA, appointmentStatus="cancelled")

    run_dag(airflow_home, "ghl_gymdesk", env)

    [booking] = app_sim.records("bookings")
    assert (booking["starts_at"], booking["status"]) == (iso(moved), "cancelled")


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

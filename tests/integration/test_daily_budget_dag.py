"""A first sync bigger than GHL's day, run by Airflow: the run stops at the daily reserve and still
succeeds (what it read is synced, the rest is owed, GHL's writes wait), and the next day's run
finishes the job without reading again what the first one read."""

from __future__ import annotations

import json

import pytest
from crm_sync.paths import PROFILES_DIR

from tests.conftest import LOCATION_ID, connection_env, run_dag
from tests.helpers import by_email

pytestmark = [pytest.mark.integration]
PAST = "2026-10-01T09:00:00.000Z"
PEOPLE = 12


def newest_report(home) -> dict:
    return json.loads(max((home / "reports" / "ghl_gymdesk").glob("*.json"), key=lambda p: p.stat().st_mtime)
                      .read_text())


def test_a_first_sync_spread_over_two_days_stops_cleanly_and_reads_each_note_once(
        airflow_home, tmp_path, ghl_sim, gymdesk_sim):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "gymdesk.yaml").write_text((PROFILES_DIR / "gymdesk.yaml").read_text().replace(
        "  page_limit: 500\n", "  page_limit: 500\n  daily_reserve: 2\n"))
    ghl_sim.seed("contacts", [{"id": f"ghlPerson{n:011d}", "locationId": LOCATION_ID, "firstName": f"P{n}",
                               "email": f"p{n}@example.com", "dateAdded": PAST, "dateUpdated": PAST}
                              for n in range(PEOPLE)])
    ghl_sim.seed("notes", [{"id": f"ghlNote{n:013d}", "contactId": f"ghlPerson{n:011d}", "body": f"Note {n}",
                            "dateAdded": PAST} for n in range(PEOPLE)])
    gymdesk_sim.seed("members", [{"id": "mem_1", "first_name": "Ada", "last_name": "Gym", "email": "ada@example.com",
                                  "status": "active", "created_at": PAST, "updated_at": PAST}])
    home = tmp_path / "home"
    env = {**connection_env(ghl_sim.url, gymdesk_sim.url), "CRM_SYNC_HOME": str(home),
           "CRM_SYNC_PROFILES_DIR": str(profiles), "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}"}
    # A day of 10 calls with 2 in reserve: the contact search, the task scan, the calendars and a few
    # notes fit; the other notes and most GHL writes do not (the load's client, new, sends one call
    # before GHL's answer tells it the day's remaining).
    ghl_sim.admin.post("/day", json={"daily_max": 10}).raise_for_status()

    run_dag(airflow_home, "ghl_gymdesk", env)  # succeeds: a budget stop is not a failure

    first = newest_report(home)
    stop = first["budget_stop"]
    assert "down to the reserve of 2" in stop["message"] and 0 < stop["notes_owed"] < PEOPLE
    assert stop["writes_waiting"] > 0 and first["failed_at"] is None  # the upsert and the fallback lead sources
    assert len(gymdesk_sim.records("members")) == 1 + PEOPLE  # the app side went on: every GHL contact
    calls = ghl_sim.calls()
    assert not [route for route in calls if route.startswith("429")]  # never past GHL's own limit
    notes_read = calls["GET /contacts/{contact_id}/notes"]

    ghl_sim.admin.post("/day", json={"daily_max": 10_000}).raise_for_status()  # the next day
    run_dag(airflow_home, "ghl_gymdesk", env)

    second = newest_report(home)
    assert second["budget_stop"] is None and second["failed_at"] is None
    assert "ada@example.com" in by_email(ghl_sim.records("contacts"), {"email": "email"})
    assert sorted(n["content"] for n in gymdesk_sim.records("notes")) == sorted(f"Note {n}" for n in range(PEOPLE))
    # Each contact's notes were read once over the two days (the second run read only those owed).
    assert ghl_sim.calls()["GET /contacts/{contact_id}/notes"] == PEOPLE
    assert notes_read + stop["notes_owed"] == PEOPLE

"""Issue 17, as a new user meets it: a New York repair shop on MyGadgetRepairs (which keeps dates and
times with no zone) synced with GHL by Airflow, over real HTTP to both simulators."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from crm_sync.paths import PROFILES_DIR

from harness.simulators import mygadgetrepairs
from harness.simulators.base import ServerThread, SimState
from tests.conftest import APP_KEY, LOCATION_ID, Sim, run_dag
from tests.integration.test_app_profiles import PAST, by_email, environment, ghl_contact

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # two DAG runs
SHOP = "America/New_York"


@pytest.fixture
def shop_sim():
    with ServerThread(mygadgetrepairs.create_app(APP_KEY, SimState(), zone=SHOP)) as server:
        yield Sim(server.url)


def test_a_new_york_shop_gets_ghl_times_at_its_own_hour_and_day_and_gives_ghl_its_due_dates(
        airflow_home, tmp_path, ghl_sim, shop_sim):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "mygadgetrepairs.yaml").write_text(
        (PROFILES_DIR / "mygadgetrepairs.yaml").read_text() + f"\ntimezone: {SHOP}\n")
    eli = "ghlEli0000000000001"
    ghl_sim.seed("contacts", [ghl_contact(eli, "eli@example.com", "Eli", "Park")])
    ghl_sim.seed("appointments", [{"id": "ghlAppt000000000001", "locationId": LOCATION_ID, "calendarId": "cal1",
                                   "contactId": eli, "title": "Drop-off", "startTime": "2026-12-01T14:00:00Z",
                                   "endTime": "2026-12-01T14:30:00Z", "appointmentStatus": "confirmed",
                                   "dateAdded": PAST, "dateUpdated": PAST}])
    ghl_sim.seed("tasks", [{"id": "ghlTask000000000001", "contactId": eli, "title": "Call back", "body": None,
                            "dueDate": "2026-12-02T03:00:00Z", "completed": False, "dateAdded": PAST}])
    stamp = "2026-11-01 05:00:00"  # shop time
    shop_sim.seed("customers", [{"id": 101, "ref": "CUS-101", "email": "dana@example.com", "mobile": None,
                                 "phone": None, "company": None,
                                 "name_parts": {"first_name": "Dana", "middle_name": None, "last_name": "Reyes"},
                                 "created_date": stamp, "last_updated": stamp}])
    shop_sim.seed("tasks", [{"id": 501, "customer": {"internal_id": 101}, "title": "Replace screen",
                             "description": None, "dueDate": "2026-12-01", "status": "Pending",
                             "created_date": stamp, "last_updated": stamp}])
    env = {**environment("mygadgetrepairs", ghl_sim, shop_sim, tmp_path), "CRM_SYNC_PROFILES_DIR": str(profiles)}

    run_dag(airflow_home, "ghl_mygadgetrepairs", env)

    shop = by_email(shop_sim.records("customers"))
    assert [(a["customer"]["internal_id"], a["date"], a["time"]) for a in shop_sim.records("appointments")] == [
        (shop["eli@example.com"]["id"], "01-Dec-2026", "09:00")]  # 14:00Z is 9:00 in New York, not 14:00
    assert [(t["title"], t["dueDate"]) for t in shop_sim.records("tasks") if t["title"] == "Call back"] == [
        ("Call back", "2026-12-01")]  # 03:00Z on the 2nd is 22:00 on the 1st in New York
    dana = by_email(ghl_sim.records("contacts"))["dana@example.com"]
    [replace] = [t for t in ghl_sim.records("tasks") if t["contactId"] == dana["id"]]
    due = datetime.fromisoformat(replace["dueDate"].replace("Z", "+00:00")).astimezone(ZoneInfo(SHOP))
    assert due.strftime("%Y-%m-%d %H:%M") == "2026-12-01 12:00"  # the shop's day, at noon there
    report = json.loads(next((tmp_path / "home" / "reports" / "ghl_mygadgetrepairs").glob("*.json")).read_text())
    assert report["timezone"] == SHOP
    shown = {c["field"]: c["after"] for w in report["writes"] if w["entity"] == "appointment" for c in w["changes"]}
    assert shown["start"] == "2026-12-01 09:00 EST America/New_York"

    # The shop completes its task: MyGadgetRepairs stamps last_updated in New York time, which is
    # five hours behind UTC; read as UTC it would fall before the window and be missed.
    mgr = httpx.Client(base_url=shop_sim.url + "/v1", headers={"Authorization": APP_KEY}, timeout=10)
    mgr.put("/projectTask/501", json={"status": "Completed"}).raise_for_status()
    ghl_sim.reset_calls()
    shop_sim.reset_calls()

    run_dag(airflow_home, "ghl_mygadgetrepairs", env)

    assert [t["completed"] for t in ghl_sim.records("tasks") if t["contactId"] == dana["id"]] == [True]
    assert ghl_sim.calls().get("PUT /contacts/{contact_id}/tasks/{task_id}/completed") == 1, ghl_sim.calls()
    writes = [c for c in shop_sim.calls() if c.startswith(("POST", "PUT"))]
    assert writes == [], f"nothing drifted, so nothing is written back to the shop: {shop_sim.calls()}"
    reports = sorted((tmp_path / "home" / "reports" / "ghl_mygadgetrepairs").glob("*.json"),
                     key=lambda path: path.stat().st_mtime)
    window = json.loads(reports[-1].read_text())["sides"]["app"]["window"]
    assert window.startswith("watermark [") and window.count("America/New_York") == 2, window
    appointment = shop_sim.records("appointments")[0]
    assert (appointment["date"], appointment["time"]) == ("01-Dec-2026", "09:00")

"""The fast lane's DAG (ghl_gymdesk_fast), run by Airflow against the simulators: it reads only what the
pending webhook events name, both ways, marks them done, moves no watermark, and a rerun writes nothing."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from harness.demo import located_profiles
from harness.demo_data import LOCATION_ID
from tests.conftest import GHL_TOKEN, GYMDESK_KEY, connection_env, run_dag

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _event(conn: sa.Connection, source: str, event_type: str, contact_id: str, object_id: str,
           entity: str | None) -> int:
    """An inbox row as the receivers store it (GHL's, or the app's own push for this profile)."""
    from crm_sync.warehouse.tables import webhook_inbox

    now = datetime.now(UTC)
    webhook_id = f"{source}:{uuid.uuid4()}" if source != "ghl" else str(uuid.uuid4())
    return conn.execute(sa.insert(webhook_inbox).values(
        webhook_id=webhook_id, location_id=LOCATION_ID, event_type=event_type, contact_id=contact_id,
        object_id=object_id, event_at=now, received_at=now, routed=True, payload={"type": event_type},
        payload_bytes=0, source=source, entity=entity)).inserted_primary_key[0]


def test_the_fast_lane_syncs_only_the_records_events_name_both_ways_and_a_rerun_writes_nothing(
        airflow_home, tmp_path, ghl_sim, gymdesk_sim, demo_data):
    ghl_seed, desk_seed = demo_data.seeds()
    ghl_sim.seed("contacts", ghl_seed["contacts"])
    gymdesk_sim.seed("members", desk_seed["members"])
    warehouse = tmp_path / "warehouse.db"
    env = {**connection_env(ghl_sim.url, gymdesk_sim.url), "CRM_SYNC_HOME": str(tmp_path / "home"),
           "WAREHOUSE_URL": f"sqlite:///{warehouse}",
           "CRM_SYNC_PROFILES_DIR": str(located_profiles(tmp_path, "gymdesk", only=True))}
    run_dag(airflow_home, "ghl_gymdesk", env)  # the first sync links everyone
    engine = sa.create_engine(f"sqlite:///{warehouse}")
    with engine.connect() as conn:
        marks = conn.execute(sa.text("SELECT side, entity, watermark FROM sync_state ORDER BY 1, 2")).all()

    # One edit on each side, each announced by its webhook (one event a side).
    person, other = demo_data.expected[0]["email"], demo_data.expected[1]["email"]
    ghl_id = next(c["id"] for c in ghl_sim.records("contacts") if (c.get("email") or "").lower() == person)
    member_id = next(m["id"] for m in gymdesk_sim.records("members") if (m.get("email") or "").lower() == other)
    httpx.put(f"{ghl_sim.url}/contacts/{ghl_id}", json={"companyName": "Edited in GHL"},
              headers={"Authorization": f"Bearer {GHL_TOKEN}", "Version": "2021-07-28"}).raise_for_status()
    httpx.patch(f"{gymdesk_sim.url}/v1/members/{member_id}", json={"data": {"company": "Edited in Gymdesk"}},
                headers={"X-API-Key": GYMDESK_KEY}).raise_for_status()
    # A child on each side: a note added under the GHL contact, a task added to the Gymdesk member.
    httpx.post(f"{ghl_sim.url}/contacts/{ghl_id}/notes", json={"body": "Prefers mornings"},
               headers={"Authorization": f"Bearer {GHL_TOKEN}", "Version": "2021-07-28"}).raise_for_status()
    task = httpx.post(f"{gymdesk_sim.url}/v1/tasks", headers={"X-API-Key": GYMDESK_KEY}, json={"data": {
        "member_id": member_id, "title": "Book a trial class", "description": "", "status": "open",
        "due_at": "2026-12-20T10:00:00Z"}})
    task.raise_for_status()
    task_id = str(task.json()["data"]["id"])
    with engine.begin() as conn:
        events = [_event(conn, "ghl", "ContactUpdate", ghl_id, ghl_id, None),
                  _event(conn, "ghl", "NoteCreate", ghl_id, "note-1", None),
                  _event(conn, "app:gymdesk", "member.updated", str(member_id), str(member_id), "contact"),
                  _event(conn, "app:gymdesk", "task.created", str(member_id), task_id, "task")]
    ghl_sim.reset_calls()
    gymdesk_sim.reset_calls()

    run_dag(airflow_home, "ghl_gymdesk_fast", env)

    ghl_calls, desk_calls = ghl_sim.calls(), gymdesk_sim.calls()
    # read: the two named records by id, nothing listed or searched
    assert ghl_calls.get("GET /contacts/{contact_id}", 0) >= 1 and "POST /contacts/search" not in ghl_calls, ghl_calls
    assert desk_calls.get("GET /v1/members/{member_id}") == 1 and "GET /v1/members" not in desk_calls, desk_calls
    assert ghl_calls.get("GET /contacts/{contact_id}/notes") == 1, ghl_calls  # the note event's contact only
    assert desk_calls.get("GET /v1/tasks/{task_id}") == 1 and "GET /v1/tasks" not in desk_calls, desk_calls
    assert "GET /v1/notes" not in desk_calls and "GET /v1/bookings" not in desk_calls, desk_calls
    # written: each edit to the other side, once
    assert next(m for m in gymdesk_sim.records("members") if m["email"].lower() == person)["company"] \
        == "Edited in GHL"
    assert next(c for c in ghl_sim.records("contacts") if (c.get("email") or "").lower() == other)["companyName"] \
        == "Edited in Gymdesk"
    assert desk_calls.get("PATCH /v1/members/{member_id}") == 1 and ghl_calls.get("PUT /contacts/{contact_id}") == 1
    assert [n["content"] for n in gymdesk_sim.records("notes") if n["content"] == "Prefers mornings"] \
        == ["Prefers mornings"]
    assert [t["title"] for t in ghl_sim.records("tasks") if t["title"] == "Book a trial class"] \
        == ["Book a trial class"]
    with engine.connect() as conn:
        done = conn.execute(sa.text("SELECT inbox_id FROM webhook_done WHERE profile = 'gymdesk'")).scalars().all()
        assert sorted(done) == sorted(events)
        assert conn.execute(sa.text("SELECT side, entity, watermark FROM sync_state ORDER BY 1, 2")).all() == marks
        dags = conn.execute(sa.text("SELECT DISTINCT dag_id FROM run_log WHERE step = 'load'")).scalars().all()
        assert sorted(dags) == ["ghl_gymdesk", "ghl_gymdesk_fast"]

    ghl_sim.reset_calls()
    gymdesk_sim.reset_calls()
    run_dag(airflow_home, "ghl_gymdesk_fast", env)  # nothing pending: nothing read, nothing written
    calls = {**ghl_sim.calls(), **gymdesk_sim.calls()}
    assert not any(n for call, n in calls.items() if call.split(" ")[0] in WRITES), calls
    assert not any(call.startswith("GET /contacts/") or call.startswith("GET /v1/") for call in calls), calls
    engine.dispose()
    shutil.rmtree(tmp_path / "home", ignore_errors=True)

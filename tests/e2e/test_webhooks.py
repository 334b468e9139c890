"""Webhooks through the real Airflow api-server and scheduler: edits made in GHL reach the app in the
fast-lane run GHL's webhooks trigger, a burst of events becomes a few runs, each event used once, and
an edit in the gym reaches GHL through Gymdesk's own signed webhook."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from harness.webhook_lab import FAST_DAG_ID, event, lab, post_all, signed
from tests.integration.test_app_profiles import PAST, by_email, ghl_contact

pytestmark = [pytest.mark.e2e]
OMAR, PIA, RAJ = "ghlOmar000000000001", "ghlPia0000000000001", "ghlRaj0000000000001"
TASK = "ghlTask000000000001"
BURST = 1000


@pytest.mark.slow  # about 2.5 minutes: one Airflow api-server + scheduler for everything below
def test_ghl_edits_reach_the_app_through_webhook_triggered_runs_and_a_burst_is_used_once(tmp_path):
    ghl_seed = {"contacts": [ghl_contact(OMAR, "omar@example.com", "Omar", "Khan"),
                             ghl_contact(PIA, "pia@example.com", "Pia", "Lund"),
                             ghl_contact(RAJ, "raj@example.com", "Raj", "Rao")],
                "tasks": [{"id": TASK, "contactId": OMAR, "title": "Call Omar", "body": "About the trial",
                           "dueDate": "2026-12-01T10:00:00Z", "completed": False, "dateAdded": PAST}]}
    with lab(tmp_path, ghl_seed, {}) as ghl_app:
        app = ghl_app.sides.admin["app"]
        members = by_email(app.get("/records/members").json())
        assert {e: m["status"] for e, m in members.items()} == {
            "omar@example.com": "active", "pia@example.com": "active", "raj@example.com": "active"}
        first_runs = len(ghl_app.runs())

        # The receiver in the real api-server refuses what GHL did not sign.
        raw, headers = signed(event("NoteCreate", id="n0", contactId=PIA, body="forged"))
        assert httpx.post(ghl_app.receiver, content=raw, headers={"Content-Type": "application/json"}).status_code == 401
        assert httpx.post(ghl_app.receiver, content=raw.replace(b"forged", b"altered"),
                          headers=headers).status_code == 401

        # In GHL: a note added to Pia (her contact does not change), Omar's task completed, Raj deleted.
        ghl = ghl_app.ghl()
        ghl.post(f"/contacts/{PIA}/notes", json={"body": "Wants the early class"}).raise_for_status()
        ghl.put(f"/contacts/{OMAR}/tasks/{TASK}/completed", json={"completed": True}).raise_for_status()
        ghl.delete(f"/contacts/{RAJ}").raise_for_status()
        # Meanwhile a burst, half of it redelivered (GHL retries): stored once, answered 200 both times.
        burst = [signed(event("ContactUpdate", id=(OMAR, PIA)[n % 2])) for n in range(BURST)]
        answers = post_all(ghl_app.receiver, burst + burst[::2])
        assert [status for status, _, _ in answers] == [200] * (BURST + BURST // 2)
        deliveries = ghl_app.sides.admin["ghl"].get("/webhooks/deliveries").json()
        deadline = time.monotonic() + 30
        while len(deliveries) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
            deliveries = ghl_app.sides.admin["ghl"].get("/webhooks/deliveries").json()
        assert {(d["type"], d["status"]) for d in deliveries} >= {
            ("NoteCreate", 200), ("TaskComplete", 200), ("ContactDelete", 200)}, deliveries

        ghl_app.settle(time.monotonic() + 240, BURST + len(deliveries))

        pia, omar = members["pia@example.com"], members["omar@example.com"]
        notes = [(n["member_id"], n["content"]) for n in app.get("/records/notes").json()]
        assert (pia["id"], "Wants the early class") in notes
        tasks = {t["title"]: (t["member_id"], t["status"]) for t in app.get("/records/tasks").json()}
        assert tasks["Call Omar"] == (omar["id"], "done")
        assert by_email(app.get("/records/members").json())["raj@example.com"]["status"] == "archived"
        runs = ghl_app.runs()[first_runs:]
        assert runs and all(r["run_type"] == "asset_triggered" and r["state"] == "success" for r in runs), runs
        assert {r["dag_id"] for r in runs} == {FAST_DAG_ID}, runs  # the fast lane; the batch DAG keeps its cron
        # A burst is a few runs, not one per event (plus those Gymdesk's echoes of our writes wake).
        assert len(runs) <= 8, runs
        stored, done = ghl_app.inbox("ghl")
        assert stored == done == BURST + len(deliveries)

        # Gymdesk pushes too: its own signed webhook brings an edit made in the gym to GHL.
        member_raw = json.dumps({"id": "evt_forged", "type": "member.updated", "data": omar}).encode()
        assert httpx.post(ghl_app.app_receiver, content=member_raw,
                          headers={"Content-Type": "application/json"}).status_code == 401
        ghl_app.app().patch(f"/v1/members/{omar['id']}", json={"data": {"company": "Omar's Gym"}}).raise_for_status()
        deadline = time.monotonic() + 120

        def omar_in_ghl() -> dict:
            return by_email(ghl_app.sides.admin["ghl"].get("/records/contacts").json())["omar@example.com"]

        while omar_in_ghl().get("companyName") != "Omar's Gym":
            assert time.monotonic() < deadline, "Omar's edit in Gymdesk never reached GHL"
            time.sleep(0.5)
        ghl_app.settle(time.monotonic() + 120, 0)
        stored, done = ghl_app.inbox("app:gymdesk")
        assert stored >= 1 and done == stored  # every push used, none left pending
        assert ghl_app.used_twice() == 0

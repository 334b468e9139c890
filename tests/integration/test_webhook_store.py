"""The GHL webhook receiver stores an event once in a real warehouse (the SQLite default and PostgreSQL)
and wakes the location's DAGs. What it refuses and never logs: tests/unit/test_webhook_receiver.py."""

from __future__ import annotations

import time

from crm_sync.profile import location_asset

from tests.unit.test_webhook_receiver import LOCATION, Receiver, event, signed


def test_a_signed_event_is_stored_once_and_wakes_the_locations_dags(tmp_path, warehouse_url):
    receiver = Receiver(tmp_path, warehouse_url)
    body = event()
    answer = receiver.post(*signed(body))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "stored", "profiles": ["gymdesk"]}
    rows = receiver.rows()
    assert [(r.webhook_id, r.event_type, r.contact_id, r.object_id, r.routed) for r in rows] == \
        [(body["webhookId"], "NoteCreate", "contact1", "note1", True)]
    assert rows[0].payload == body
    # GHL redelivers: answered 200, not stored (so not processed) again.
    again = receiver.post(*signed(body))
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert len(receiver.rows()) == 1
    deadline = time.monotonic() + 5
    while not receiver.woken and time.monotonic() < deadline:
        time.sleep(0.01)
    assert receiver.woken == [location_asset(LOCATION)]

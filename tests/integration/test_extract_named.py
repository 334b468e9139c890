"""The fast lane's GHL extract asks the warehouse only about the contacts its events name: no scan of
every linked child or of the whole xref on each run, which would grow with the location, not the change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from harness.demo_data import LOCATION_ID

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _linked(contact: str, n: int) -> tuple[dict, dict]:
    staged = {"profile": "gymdesk", "entity": "task", "side": "ghl", "source_id": f"t{n}", "contact_id": contact,
              "fields": {"title": f"task {n}"}, "updated_at": NOW, "content_hash": "h", "run_id": "r0"}
    link = {"profile": "gymdesk", "entity": "task", "ghl_id": f"t{n}", "app_id": f"a{n}", "updated_at": NOW}
    return staged, link


def test_only_the_named_contacts_are_looked_up_and_only_when_an_event_calls_for_it(gymdesk_warehouse, ghl_sim):
    from crm_sync.pipeline.context import RunContext
    from crm_sync.pipeline.extract import _last_synced, _linked_children
    from crm_sync.pipeline.extract_named import extract_named
    from crm_sync.profile import profile_by_name
    from crm_sync.warehouse.tables import staging_record, webhook_inbox, xref

    base = profile_by_name("gymdesk")
    profile = base.model_copy(update={"ghl": base.ghl.model_copy(update={"location_id": LOCATION_ID})})
    eng = gymdesk_warehouse
    ghl_sim.seed("contacts", [{"id": c, "locationId": LOCATION_ID, "email": f"{c}@example.com", "firstName": c,
                               "dateUpdated": "2026-11-30T12:00:00.000Z"} for c in ("c1", "c2")])
    with eng.begin() as conn:
        rows = [_linked(contact, n) for n, contact in enumerate(("c1", "c2", "c3"))]
        conn.execute(sa.insert(staging_record), [staged for staged, _ in rows])
        conn.execute(sa.insert(xref), [link for _, link in rows] + [
            {"profile": "gymdesk", "entity": "contact", "ghl_id": c, "app_id": f"m-{c}", "updated_at": NOW}
            for c in ("c1", "c2", "c3")])
    ctx = RunContext(profile, "asset_triggered__1", "asset_triggered", dag_id=profile.fast_dag_id)
    with eng.connect() as conn:
        assert {r.contact_id for r in _linked_children(conn, ctx, "task", {"c1", "c9"})} == {"c1"}
        assert set(_last_synced(conn, ctx, {"c2"})) == {"c2"}
        assert set(_last_synced(conn, ctx)) == {"c1", "c2", "c3"}  # the batch run's: every linked contact

    def event(kind: str, contact: str) -> dict:
        return {"webhook_id": str(uuid.uuid4()), "location_id": LOCATION_ID, "event_type": kind,
                "contact_id": contact, "object_id": contact, "event_at": NOW, "received_at": NOW, "routed": True,
                "payload": {}}

    statements: list[str] = []
    sa.event.listen(eng, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with eng.begin() as conn:
        conn.execute(sa.insert(webhook_inbox), [event("ContactUpdate", "c1")])
    extract_named(ctx, "ghl")
    assert not [s for s in statements if "JOIN xref" in s or ("FROM xref" in s and "ghl_id IS NOT NULL" in s)]

    statements.clear()
    with eng.begin() as conn:
        conn.execute(sa.insert(webhook_inbox), [event("TaskUpdate", "c2")])
    extract_named(ctx, "ghl")
    joins = [s for s in statements if "JOIN xref" in s]
    assert joins and all("staging_record.contact_id IN" in s for s in joins)


def test_the_batch_extract_uses_only_the_events_its_window_covers(gymdesk_warehouse, ghl_sim):
    """An event received after the window's end names a change the contact search did not look for:
    it stays pending for the next run instead of being marked done unread."""
    from datetime import timedelta

    from crm_sync.pipeline import handoff
    from crm_sync.pipeline.context import RunContext, advance_watermark
    from crm_sync.pipeline.extract import extract
    from crm_sync.profile import profile_by_name
    from crm_sync.warehouse.tables import webhook_inbox

    base = profile_by_name("gymdesk")
    profile = base.model_copy(update={"ghl": base.ghl.model_copy(update={"location_id": LOCATION_ID})})
    eng = gymdesk_warehouse
    end = datetime.now(UTC) - timedelta(minutes=10)
    with eng.begin() as conn:
        for entity in ("contact", "task", "note", "appointment"):
            advance_watermark(conn, "gymdesk", "ghl", entity, end - timedelta(hours=1))
        moments = (end - timedelta(minutes=1), end + timedelta(minutes=1))  # inside the window, then after it
        ids = [conn.execute(sa.insert(webhook_inbox).values(
            webhook_id=f"wh{n}", location_id=LOCATION_ID, event_type="ContactUpdate", contact_id=f"c{n}",
            object_id=f"c{n}", event_at=received, received_at=received, routed=True, payload={})
        ).inserted_primary_key[0] for n, received in enumerate(moments)]
    ctx = RunContext(profile, "scheduled__1", "scheduled", interval_start=end - timedelta(hours=1),
                     interval_end=end, dag_id=profile.dag_id)
    extract(ctx, "ghl")
    with eng.connect() as conn:
        assert handoff.read(conn, ctx, "ghl").webhook_events.ids == [ids[0]]

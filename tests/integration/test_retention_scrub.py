"""retention_days covers personal data everywhere, on SQLite and PostgreSQL: a real run against the
simulators (a dead-lettered write among its writes), aged by 100 days, then a run with the
profile's 90 days. Its raw records, quarantine rows and inbox events are gone; its outbox rows,
run_log rows and review decisions keep their ids, keys and statuses and lose every name, email,
phone and payload; the old run's report still renders; and a third run writes nothing twice."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from crm_sync.pipeline.context import RunContext, utcnow
from crm_sync.pipeline.extract import extract
from crm_sync.pipeline.load import MAX_ATTEMPTS, TransientLoadError, load
from crm_sync.pipeline.reconcile import reconcile
from crm_sync.pipeline.report import build_report, render, report
from crm_sync.pipeline.retention import REMOVED
from crm_sync.pipeline.stage import stage
from crm_sync.pipeline.validate import validate
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.tables import outbox, quarantine, raw_record, review_decision, run_log, webhook_inbox

from tests.conftest import LOCATION_ID, connection_env
from tests.integration.test_malformed_records import warehouse  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.integration]
PAST = "2026-10-01T09:00:00Z"
PERSONAL = ("Zelda", "zelda", "Quixote", "Yorick", "yorick", "+1415555", "not-an-email", "olga", "ursula", "wanda")


def members() -> list[dict]:
    """Four members: one with an email no rule accepts (quarantined), one updated in the future
    (a data-quality sample), two that sync."""
    return [{"id": f"mem_{n}", "first_name": f"Zelda{n}", "last_name": "Quixote", "phone": f"+1415555267{n}",
             "email": "not-an-email" if n == 2 else f"zelda{n}@example.com", "company": None,
             "lead_source": "Walk-in", "status": "active", "created_at": PAST,
             "updated_at": "2099-01-01T00:00:00Z" if n == 3 else PAST} for n in range(4)]


def run(ctx: RunContext) -> dict:
    """One run's steps in the DAG's order; the report's retention stats."""
    for side in ("ghl", "app"):
        extract(ctx, side)
    stage(ctx)
    validate(ctx)
    reconcile(ctx)
    load(ctx)
    return report(ctx)["retention"]


def rows(conn: sa.Connection, table: sa.Table, *where) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(sa.select(table).where(*where))]


def personal(found: list[dict]) -> list[str]:
    text = [json.dumps(row, default=str) for row in found]
    return [t for t in text if any(p in t for p in PERSONAL)]


def test_aged_rows_keep_ids_and_keys_and_lose_every_personal_value(warehouse, monkeypatch, ghl_sim,  # noqa: F811
                                                                   gymdesk_sim):
    for name, value in connection_env(ghl_sim.url, gymdesk_sim.url).items():
        monkeypatch.setenv(name, value)
    gymdesk_sim.seed("members", members())
    ghl_sim.seed("contacts", [{"id": "ghlA", "locationId": LOCATION_ID, "email": "yorick@example.com",
                               "firstName": "Yorick", "lastName": "Alas", "phone": "+14155552680",
                               "dateAdded": PAST, "dateUpdated": PAST, "tags": []}])
    profile = profile_by_name("gymdesk")
    assert profile.retention_days == 90
    old = RunContext(profile=profile, run_id="manual__old", run_type="manual")
    for side in ("ghl", "app"):
        extract(old, side)
    stage(old)
    validate(old)
    reconcile(old)
    for attempt in range(1, MAX_ATTEMPTS + 1):  # the first GHL write answers an HTML page: a dead letter
        ghl_sim.admin.post("/faults", json={"writes": {"skip": 0, "html": 1}}).raise_for_status()
        if attempt < MAX_ATTEMPTS:
            with pytest.raises(TransientLoadError):
                load(old)
        else:
            load(old)
    report(old)

    aged = utcnow() - timedelta(days=100)
    with warehouse.begin() as conn:  # the whole run happened 100 days ago
        for table, column in ((outbox, "created_at"), (outbox, "sent_at"), (run_log, "finished_at"),
                              (raw_record, "extracted_at"), (quarantine, "created_at")):
            conn.execute(sa.update(table).where(table.c.run_id == old.run_id, table.c[column].is_not(None))
                         .values({column: aged}))
        conn.execute(sa.insert(review_decision), [
            {"profile": "gymdesk", "ghl_id": "ghlA", "app_id": "mem_1", "decision": "apart",
             "decided_by": "olga@example.com", "decided_at": aged, "undone_by": "ursula", "undone_at": aged},
            {"profile": "gymdesk", "ghl_id": "ghlA", "app_id": "mem_0", "decision": "apart",
             "decided_by": "recent.rita", "decided_at": utcnow(), "undone_by": None, "undone_at": None}])
        for n, moment in enumerate((aged, utcnow())):
            conn.execute(sa.insert(webhook_inbox).values(
                webhook_id=f"wh{n}", location_id=LOCATION_ID, event_type="ContactUpdate", contact_id="ghlA",
                event_at=moment, received_at=moment, routed=True,
                payload={"type": "ContactUpdate", "email": f"wanda{n}@example.com"}))
        before = rows(conn, outbox, outbox.c.run_id == old.run_id)
        samples = [s for r in rows(conn, run_log, run_log.c.run_id == old.run_id, run_log.c.step == "validate")
                   for e in r["stats"]["expectations"] for s in e["samples"]]
    statuses = sorted(r["status"] for r in before)
    assert "failed" in statuses and statuses.count("sent") >= 4 and personal(before)
    assert samples and personal(before)

    stats = run(RunContext(profile=profile, run_id="manual__new", run_type="manual"))
    assert stats["outbox_failed_discarded"] == 1 and stats["outbox_scrubbed"] == statuses.count("sent") + 1

    with warehouse.connect() as conn:
        after = {r["id"]: r for r in rows(conn, outbox, outbox.c.run_id == old.run_id)}
        logged = rows(conn, run_log, run_log.c.run_id == old.run_id)
        decisions = {r["decided_by"]: r for r in rows(conn, review_decision)}
        events = {r["webhook_id"] for r in rows(conn, webhook_inbox)}
        left = rows(conn, raw_record, raw_record.c.run_id == old.run_id) + rows(
            conn, quarantine, quarantine.c.run_id == old.run_id)
        old_page = render({**build_report(conn, profile, old.run_id), "generated_at": "now", "dry_run": False})
    # ids, keys, links and statuses stay: exactly-once holds; the values are gone
    for row in before:
        kept = after[row["id"]]
        assert {k: kept[k] for k in ("idempotency_key", "xref_id", "target_id", "op", "side", "entity")} == {
            k: row[k] for k in ("idempotency_key", "xref_id", "target_id", "op", "side", "entity")}
        if row["status"] == "pending":  # waiting for the dead-lettered contact: still to be sent, whole
            assert kept["payload"] == row["payload"] and kept["scrubbed_at"] is None
            continue
        assert kept["status"] == ("discarded" if row["status"] == "failed" else row["status"])
        assert kept["payload"] == kept["merged"] == {} and kept["scrubbed_at"] is not None
        assert [d["field"] for d in kept["decisions"]] == [d["field"] for d in row["decisions"]]
    assert not personal([r for r in after.values() if r["status"] != "pending"])
    assert not personal(logged) and all(r["scrubbed_at"] for r in logged)
    scrubbed = [s for r in logged if r["step"] == "validate" for e in r["stats"]["expectations"] for s in e["samples"]]
    assert [s["id"] for s in scrubbed] == [s["id"] for s in samples] and {s["value"] for s in scrubbed} == {REMOVED}
    dead = [d for r in logged if r["step"] == "load" for d in r["stats"].get("dead_letter") or []]
    assert dead and {d["error"] for d in dead} == {REMOVED} and all(d["id"] in after for d in dead)
    assert not left and events == {"wh1"}
    assert set(decisions) == {REMOVED, "recent.rita"} and decisions[REMOVED]["undone_by"] == REMOVED
    assert decisions[REMOVED]["ghl_id"] == "ghlA" and decisions[REMOVED]["decision"] == "apart"
    assert "manual__old" in old_page and not any(p in old_page for p in PERSONAL)

    # a third run: nothing is sent twice, no record is created twice
    counts = (len(ghl_sim.records("contacts")), len(gymdesk_sim.records("members")))
    with warehouse.connect() as conn:
        sent = conn.execute(sa.select(sa.func.count()).where(outbox.c.status == "sent")).scalar_one()
    again = RunContext(profile=profile, run_id="manual__again", run_type="manual")
    run(again)
    with warehouse.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(outbox.c.status == "sent")).scalar_one() == sent
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox).where(
            outbox.c.run_id == again.run_id)).scalar_one() == 0
    assert (len(ghl_sim.records("contacts")), len(gymdesk_sim.records("members"))) == counts

"""The analysts' models kept current from the warehouse alone (no simulator): one person per person,
a merge keeps the older id, activities of a linked pair are one row, quarantine and review show on the
person, and every write is in the changelog with what it replaced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.people_models import refresh
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.tables import (outbox, person, person_activity, quarantine, raw_record, review_candidate,
                                       staging_contact, staging_record, sync_changelog, sync_snapshot, xref)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def ctx(run_id: str, dry_run: bool = False) -> RunContext:
    return RunContext(profile_by_name("gymdesk"), run_id, "manual", dry_run=dry_run)


def contact(side: str, source_id: str, run_id: str, first: str, last: str, email: str | None = None,
            phone: str | None = None, raw_id: int | None = 1, **extra) -> dict:
    return {"profile": "gymdesk", "side": side, "source_id": source_id, "first_name": first, "last_name": last,
            "email": email, "phone": phone, "company_name": None, "lead_source": None, "tags": None,
            "deleted": False, "updated_at": T0, "content_hash": "h", "raw_id": raw_id, "run_id": run_id,
            "external_id": None, **extra}


def child(entity: str, side: str, source_id: str, contact_id: str, run_id: str, fields: dict, **extra) -> dict:
    return {"profile": "gymdesk", "entity": entity, "side": side, "source_id": source_id, "contact_id": contact_id,
            "fields": fields, "deleted": False, "updated_at": T0, "content_hash": "h", "raw_id": None,
            "run_id": run_id, **extra}


def link(conn, entity: str, ghl_id: str | None, app_id: str | None, base: dict | None = None) -> int:
    return conn.execute(sa.insert(xref).values(profile="gymdesk", entity=entity, ghl_id=ghl_id, app_id=app_id,
                                               base=base, updated_at=T0).returning(xref.c.id)).scalar_one()


def write(conn, run_id: str, xref_id: int, side: str, op: str, payload: dict, before: dict | None, status: str,
          entity: str = "contact", contact_xref_id: int | None = None, key: str = "") -> int:
    return conn.execute(sa.insert(outbox).values(
        profile="gymdesk", run_id=run_id, entity=entity, side=side, op=op, xref_id=xref_id,
        contact_xref_id=contact_xref_id, target_id=None if op == "create" else "x", payload=payload, merged=payload,
        decisions=[{"field": f, "winner": "app", "reason": "latest_wins: updated more recently"} for f in payload],
        idempotency_key=f"{run_id}{xref_id}{side}{op}{key}", status=status, attempts=0, created_at=T0,
        sent_at=T0 + timedelta(minutes=5) if status == "sent" else None,
        sent_run_id=run_id if status in ("sent", "failed") else None, before=before).returning(outbox.c.id)
    ).scalar_one()


def people(conn) -> dict[tuple, sa.Row]:
    return {(r.ghl_id, r.app_id): r for r in conn.execute(sa.select(person))}


@pytest.fixture
def first_run(sqlite_warehouse) -> sa.Engine:
    """Pat is on both sides (linked, a task on each side linked too), Zoë only in GHL, Sam only in the app."""
    with sqlite_warehouse.begin() as conn:
        conn.execute(sa.insert(staging_contact), [
            contact("ghl", "g-pat", "r1", "José", "García", "Pat@Example.com", "+15550102030"),
            contact("app", "a-pat", "r1", "Jose", "Garcia", "pat@example.com", "+15550102030"),
            contact("ghl", "g-zoe", "r1", "Zoë", "Quinn", "zoe@example.com"),
            contact("app", "a-sam", "r1", "Sam", "Lee", None, "+15550109999")])
        pat = link(conn, "contact", "g-pat", "a-pat", {"first_name": "José", "last_name": "García",
                                                       "email": "pat@example.com", "phone": "+15550102030"})
        task = {"title": "Call new lead", "completed": False, "due_date": "2026-11-21T15:00:00Z"}
        conn.execute(sa.insert(staging_record), [
            child("task", "ghl", "t-g", "g-pat", "r1", task), child("task", "app", "t-a", "a-pat", "r1", task),
            child("note", "ghl", "n-z", "g-zoe", "r1", {"body": "First line\nsecond", "date": None}),
            child("appointment", "app", "ap-s", "a-sam", "r1",
                  {"title": "Trial", "start": "2026-11-22T09:00:00Z", "status": "Confirmed"})])
        link(conn, "task", "t-g", "t-a", task)
        write(conn, "r1", pat, "app", "update", {"first_name": "José"}, {"first_name": "Jose"}, "sent")
        refresh(conn, ctx("r1"))
    return sqlite_warehouse


def test_a_first_refresh_makes_one_person_per_person_with_status_and_search_keys(first_run):
    with first_run.connect() as conn:
        found = people(conn)
        assert set(found) == {("g-pat", "a-pat"), ("g-zoe", None), (None, "a-sam")}
        pat = found[("g-pat", "a-pat")]
        assert (pat.status, pat.first_name, pat.email) == ("synced", "José", "pat@example.com")
        assert pat.search_name == "jose garcia" and pat.search_email == "pat@example.com"
        assert pat.search_phone == "15550102030" and pat.last_synced == T0 + timedelta(minutes=5)
        assert pat.winners["first_name"] == {"side": "app", "reason": "latest_wins: updated more recently",
                                             "run_id": "r1"}
        assert found[("g-zoe", None)].status == "ghl_only" and found[(None, "a-sam")].status == "app_only"
        assert found[("g-zoe", None)].search_name == "zoe quinn"
        acts = {r.entity: r for r in conn.execute(sa.select(person_activity))}
        assert (acts["task"].sides, acts["task"].ghl_id, acts["task"].app_id) == ("both", "t-g", "t-a")
        assert (acts["task"].person_id, acts["task"].status, acts["task"].title) == (pat.person_id, "open",
                                                                                      "Call new lead")
        assert acts["task"].at_utc == datetime(2026, 11, 21, 15, tzinfo=UTC)
        assert acts["task"].at_local == "2026-11-21T15:00:00+00:00" and acts["task"].zone == "UTC"
        assert (acts["note"].title, acts["note"].status, acts["note"].sides) == ("First line", None, "ghl")
        assert acts["note"].at_utc == T0  # no date of its own: its last change
        assert (acts["appointment"].status, acts["appointment"].person_id) == ("confirmed",
                                                                               found[(None, "a-sam")].person_id)
        log = conn.execute(sa.select(sync_changelog)).one()
        assert (log.before, log.after, log.status, log.person_id) == (
            {"first_name": "Jose"}, {"first_name": "José"}, "sent", pat.person_id)
        snap = {(r.entity, r.side, r.record_id): r.status for r in conn.execute(sa.select(sync_snapshot))}
        assert snap[("contact", "ghl", "g-pat")] == "synced" and snap[("contact", "ghl", "g-zoe")] == "one_side"


def test_two_people_linked_later_become_one_with_the_older_id(first_run):
    with first_run.begin() as conn:
        zoe = people(conn)[("g-zoe", None)].person_id
        conn.execute(sa.insert(staging_contact), [contact("app", "a-zoe", "r2", "Zoe", "Quinn", "zoe@example.com")])
        refresh(conn, ctx("r2"))  # the app's record arrives first on its own (say, ambiguous for a while)
        alone = people(conn)[(None, "a-zoe")].person_id
        conn.execute(sa.insert(staging_record), [child("note", "app", "n-a", "a-zoe", "r2b", {"body": "hi"})])
        refresh(conn, ctx("r2b"))
        link(conn, "contact", "g-zoe", "a-zoe", None)  # now linked (a review decision)
        conn.execute(sa.update(staging_contact).where(staging_contact.c.source_id == "a-zoe").values(run_id="r3"))
        refresh(conn, ctx("r3"))
        found = people(conn)
        assert ("g-zoe", "a-zoe") in found and (None, "a-zoe") not in found and ("g-zoe", None) not in found
        assert found[("g-zoe", "a-zoe")].person_id == min(zoe, alone) and found[("g-zoe", "a-zoe")].status == "synced"
        notes = {r.ghl_id or r.app_id: r.person_id for r in conn.execute(
            sa.select(person_activity).where(person_activity.c.entity == "note"))}
        assert notes == {"n-z": min(zoe, alone), "n-a": min(zoe, alone)}
        assert conn.execute(sa.select(sa.func.count()).select_from(person)).scalar_one() == 3


def test_a_quarantined_change_and_a_review_show_on_the_person(first_run):
    with first_run.begin() as conn:
        raw = conn.execute(sa.insert(raw_record).values(
            profile="gymdesk", run_id="r2", side="app", entity="contact", record_key="a-sam", source_id="a-sam",
            payload={}, extracted_at=T0).returning(raw_record.c.id)).scalar_one()
        conn.execute(sa.insert(quarantine).values(profile="gymdesk", run_id="r2", side="app", entity="contact",
                                                  source_id="a-sam", rule="email_format", detail="bad",
                                                  raw_id=raw + 10, created_at=T0))
        conn.execute(sa.insert(review_candidate).values(profile="gymdesk", ghl_id="g-zoe", app_id="a-other",
                                                        reason="by email", run_id="r2"))
        refresh(conn, ctx("r2"))
        found = people(conn)
        assert found[(None, "a-sam")].status == "quarantined" and found[("g-zoe", None)].status == "review"
        snap = conn.execute(sa.select(sync_snapshot.c.status, sync_snapshot.c.detail).where(
            sync_snapshot.c.record_id == "a-sam")).one()
        assert tuple(snap) == ("quarantined", "email_format")
        # fixed in the app: a newer version staged
        conn.execute(sa.update(staging_contact).where(staging_contact.c.source_id == "a-sam").values(
            run_id="r3", raw_id=raw + 11))
        conn.execute(sa.delete(review_candidate))
        refresh(conn, ctx("r3"))
        found = people(conn)
        assert found[(None, "a-sam")].status == "app_only" and found[("g-zoe", None)].status == "ghl_only"


def test_an_edit_updates_the_person_and_a_dry_runs_write_is_planned_in_the_changelog(first_run):
    with first_run.begin() as conn:
        pat = people(conn)[("g-pat", "a-pat")]
        conn.execute(sa.update(staging_contact).where(staging_contact.c.source_id == "g-pat").values(
            email="pat.new@example.com", run_id="r2"))
        conn.execute(sa.update(xref).where(xref.c.ghl_id == "g-pat").values(base={"email": "pat.new@example.com"}))
        pat_link = conn.execute(sa.select(xref.c.id).where(xref.c.ghl_id == "g-pat")).scalar_one()
        write(conn, "r2", pat_link, "app", "update", {"email": "pat.new@example.com"}, {"email": "pat@example.com"},
              "dry_run")
        stats = refresh(conn, ctx("r2", dry_run=True))
        after = people(conn)[("g-pat", "a-pat")]
        assert after.person_id == pat.person_id and after.email == "pat.new@example.com" and after.run_id == "r2"
        assert "pat.new@example.com" in after.search_email and after.winners["email"]["run_id"] == "r2"
        logged = conn.execute(sa.select(sync_changelog).order_by(sync_changelog.c.outbox_id)).all()
        assert [(r.status, r.before, r.after) for r in logged][-1] == (
            "planned", {"email": "pat@example.com"}, {"email": "pat.new@example.com"})
        assert stats["people"] >= 1 and stats["full"] is False
        untouched = people(conn)[("g-zoe", None)]
        assert untouched.run_id == "r1"  # not touched by r2: not rewritten


def test_retention_scrubs_the_changelog_with_the_outbox(first_run):
    from crm_sync.pipeline.retention import scrub_outbox

    with first_run.begin() as conn:
        scrub_outbox(conn, "gymdesk", T0 + timedelta(days=1), T0 + timedelta(days=91))
        row = conn.execute(sa.select(sync_changelog)).one()
        kept = conn.execute(sa.select(outbox.c.before, outbox.c.payload)).one()
    assert (row.before, row.after, kept.before, kept.payload) == ({}, {}, {}, {})
    assert row.decisions == [{"field": "first_name", "winner": "app", "reason": "latest_wins: updated more recently"}]
    assert "José" not in repr(row) and "Jose" not in repr(row)


def test_retention_empties_an_aged_snapshots_write_error_and_keeps_a_quarantine_rule(first_run):
    from crm_sync.pipeline.retention import scrub_outbox

    rows = [{"profile": "gymdesk", "entity": "contact", "side": side, "record_id": rid, "status": status,
             "detail": detail, "run_id": "r1", "updated_at": T0}
            for side, rid, status, detail in (("ghl", "old-failed", "failed", "422: email pat@example.org is taken"),
                                              ("app", "old-quarantined", "quarantined", "email_format"))]
    with first_run.begin() as conn:
        conn.execute(sa.insert(sync_snapshot), rows)
        scrub_outbox(conn, "gymdesk", T0 + timedelta(days=1), T0 + timedelta(days=91))
        details = dict(conn.execute(sa.select(sync_snapshot.c.record_id, sync_snapshot.c.detail).where(
            sync_snapshot.c.record_id.in_(("old-failed", "old-quarantined")))).all())
    assert details == {"old-failed": None, "old-quarantined": "email_format"}

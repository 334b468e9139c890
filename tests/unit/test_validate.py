"""Validate's expectations, run by Great Expectations on rows staged in a real (SQLite) warehouse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from crm_sync.pipeline.context import RunContext
from crm_sync.pipeline.report import build_report, render
from crm_sync.pipeline.validate import WAITING, validate
from crm_sync.profile import profile_by_name
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.tables import outbox, quarantine, raw_record, staging_contact, staging_record

RUN = "manual__test"
PAST = datetime(2026, 11, 1, 9, tzinfo=UTC)
FUTURE = datetime.now(UTC) + timedelta(days=2)


@pytest.fixture
def warehouse(tmp_path, monkeypatch) -> sa.Engine:
    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'warehouse.db'}")
    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path / "home"))
    engine.cache_clear()  # validate asks for the configured warehouse: this test's
    eng = engine()
    yield eng
    eng.dispose()
    engine.cache_clear()


def contact(source_id: str, email: str, first: str, last: str, side: str = "app", run_id: str = RUN, **more) -> dict:
    return {"side": side, "source_id": source_id, "email": email, "first_name": first, "last_name": last,
            "updated_at": PAST, "content_hash": source_id, "run_id": run_id, **more}


def child(entity: str, source_id: str, contact_id: str, fields: dict, side: str = "app", **more) -> dict:
    return {"entity": entity, "side": side, "source_id": source_id, "contact_id": contact_id, "fields": fields,
            "updated_at": PAST, "content_hash": source_id, "run_id": RUN, **more}


def stage(eng: sa.Engine, contacts: list[dict], children: list[dict] = ()) -> None:
    """Stage rows as the stage task would: each with its raw record."""
    with eng.begin() as conn:
        for table, rows in ((staging_contact, contacts), (staging_record, children)):
            for row in rows:
                raw_id = conn.execute(sa.insert(raw_record).values(
                    profile="gymdesk", run_id=row["run_id"], side=row["side"], entity=row.get("entity", "contact"),
                    record_key=row["source_id"], source_id=row["source_id"], payload={"id": row["source_id"]},
                    extracted_at=PAST)).inserted_primary_key[0]
                conn.execute(sa.insert(table).values(profile="gymdesk", raw_id=raw_id, **row))


def run_validate(eng: sa.Engine) -> tuple[dict, dict[str, tuple[str, str]], set[tuple[str, str]]]:
    """Validate's stats, quarantined records (id -> rule, detail), and the (entity, id) left in staging."""
    stats = validate(RunContext(profile=profile_by_name("gymdesk"), run_id=RUN, run_type="manual"))
    with eng.connect() as conn:
        bad = {q.source_id: (q.rule, q.detail) for q in conn.execute(sa.select(quarantine))}
        left = {("contact", r.source_id) for r in conn.execute(sa.select(staging_contact))}
        left |= {(r.entity, r.source_id) for r in conn.execute(sa.select(staging_record))}
    return stats, bad, left


def outcome(stats: dict, rule: str) -> dict:
    return next(o for o in stats["expectations"] if o["rule"] == rule)


def test_the_same_person_twice_on_one_side_is_quarantined_naming_the_other_id(warehouse):
    stage(warehouse, [contact("mem_1", "ana@example.com", "Ana", "Lima", run_id="earlier"),
                      contact("mem_2", "ana@example.com", "ANA", "Lima"),
                      contact("mem_3", "ana@example.com", "Teo", "Lima"),  # same email, another person
                      contact("ghl_1", "ana@example.com", "Ana", "Lima", side="ghl"),  # the other side
                      contact("mem_4", "ana@example.com", "Ana", "Lima", deleted=True, run_id="earlier"),
                      contact("mem_5", "ana@example.com", "Ana", "Lima", deleted=True)])  # archived: goes through

    stats, bad, left = run_validate(warehouse)

    assert bad == {"mem_2": ("duplicate_person", "contact app:mem_2: same_person_as='mem_1' fails "
                                                 "expect_column_values_to_be_null")}
    assert ("contact", "mem_2") not in left and {("contact", "mem_1"), ("contact", "mem_3"), ("contact", "ghl_1"), ("contact", "mem_5")} <= left
    dup = outcome(stats, "duplicate_person")
    assert (dup["success"], dup["unexpected_count"]) == (False, 1)
    assert dup["samples"] == [{"side": "app", "entity": "contact", "id": "mem_2", "value": "'mem_1'"}]


def test_a_child_of_an_unknown_contact_waits_in_staging_and_is_reported_not_quarantined(warehouse):
    stage(warehouse, [contact("mem_1", "ana@example.com", "Ana", "Lima")],
          [child("note", "n_1", "mem_1", {"body": "Known", "date": "2026-11-01T09:00:00Z"}),
           child("note", "n_2", "mem_404", {"body": "Early", "date": "2026-11-01T09:00:00Z"}),
           child("task", "t_1", "mem_1", {"title": "Call", "completed": False}, side="ghl")])  # mem_1 is app's id

    stats, bad, left = run_validate(warehouse)

    assert bad == {}
    assert {("note", "n_1"), ("note", "n_2"), ("task", "t_1")} <= left
    waiting = outcome(stats, WAITING)
    assert waiting["unexpected_count"] == 2 and stats[WAITING] == 2 and stats["failed"] == 0
    assert {(s["entity"], s["side"], s["id"], s["value"]) for s in waiting["samples"]} == {
        ("note", "app", "n_2", "'mem_404'"), ("task", "ghl", "t_1", "'mem_1'")}


def test_future_dates_non_boolean_completion_and_unknown_statuses_are_quarantined_by_rule(warehouse):
    stage(warehouse, [contact("mem_1", "ana@example.com", "Ana", "Lima"),
                      contact("mem_2", "bo@example.com", "Bo", "Ek", updated_at=datetime(9999, 1, 1, tzinfo=UTC))],
          [child("note", "n_future", "mem_1", {"body": "x", "date": FUTURE.strftime("%Y-%m-%dT%H:%M:%SZ")}),
           child("note", "n_ok", "mem_1", {"body": "x", "date": "2026-11-01T09:00:00Z"}),
           child("task", "t_bad", "mem_1", {"title": "Call", "completed": "sometimes"}),
           child("task", "t_ok", "mem_1", {"title": "Call", "completed": True}),
           child("appointment", "a_bad", "mem_1", {"title": "Class", "status": "maybe"}),
           child("appointment", "a_late", "mem_1", {"title": "Class", "status": "new"}, updated_at=FUTURE)])

    stats, bad, left = run_validate(warehouse)

    assert {k: rule for k, (rule, _) in bad.items()} == {
        "mem_2": "updated_in_future", "n_future": "date_in_future", "t_bad": "completed_not_boolean",
        "a_bad": "status_unknown", "a_late": "updated_in_future"}
    assert bad["t_bad"][1] == "task app:t_bad: completed='sometimes' fails expect_column_values_to_be_in_set"
    assert {("contact", "mem_1"), ("note", "n_ok"), ("task", "t_ok")} <= left and not {("note", "n_future")} & left
    assert stats["failed"] == 5 and stats["rows"] == {"staging_contact": 2, "staging_record": 6}
    assert outcome(stats, "completed_not_boolean")["samples"][0]["value"] == "'sometimes'"
    # Times are shown as the user knows them, not as the epoch seconds GX compared.
    assert bad["mem_2"][1] == ("contact app:mem_2: updated_at='9999-01-01T00:00:00+00:00' fails "
                               "expect_column_values_to_be_between")
    assert outcome(stats, "date_in_future")["samples"][0]["value"] == repr(FUTURE.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_the_report_page_shows_counts_failed_expectations_with_samples_and_decisions(warehouse):
    stage(warehouse, [contact("mem_1", "ana@example.com", "Ana", "Lima"),
                      contact("mem_2", "not-an-email", "Bo", "Ek")])
    stats, _, _ = run_validate(warehouse)
    assert stats["passed"]  # 1 bad of 2 is over 5%, but too few rows to fail the run
    decision = {"field": "company_name", "winner": "app", "reason": "latest_wins: app edited later",
                "ghl": "Old Gym", "app": "New Gym", "value": "New Gym"}
    with warehouse.begin() as conn:
        conn.execute(sa.insert(outbox).values(
            profile="gymdesk", run_id=RUN, entity="contact", side="ghl", op="update", xref_id=1, target_id="ghl_1",
            payload={"company_name": "New Gym"}, merged={}, decisions=[decision], idempotency_key="k1",
            status="sent", created_at=PAST))
        summary = build_report(conn, profile_by_name("gymdesk"), RUN)
    page = render({**summary, "generated_at": "2026-11-27T10:00:00+00:00", "dry_run": False})

    assert "validated 2 staged rows: staging_contact 2" in page
    assert "<td>email format</td><td><code>expect_column_values_to_match_regex(email)</code></td>" in page
    row = page[page.index("<td>email format</td>"):].split("</tr>")[0]
    assert '<td class="bad">failed</td><td>1</td>' in row and "app contact mem_2: <code>&#39;not-an-email&#39;</code>" in row
    assert "<tr><td>email_format</td><td class=\"bad\">1</td></tr>" in page  # quarantine count per rule
    assert "company_name: <b>app</b> (latest_wins: app edited later); GHL \"Old Gym\", app \"New Gym\"" in page

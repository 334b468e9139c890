"""The ghl_gymdesk DAG, run by Airflow against the simulators, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.conftest import connection_env, run_dag, warehouse_env
from tests.helpers import GHL_FIELDS, GYMDESK_FIELDS, by_email

pytestmark = [pytest.mark.integration]
WRITE_METHODS = ("POST /contacts/upsert", "POST /contacts/", "PUT /contacts/{contact_id}",
                 "POST /v1/members", "PATCH /v1/members/{member_id}",
                 "POST /contacts/{contact_id}/tasks", "POST /v1/tasks")  # tasks: new leads' new_contact_tasks


def test_two_way_contact_sync_reaches_the_merged_result_and_a_rerun_writes_nothing(
        airflow_home, warehouse_url, tmp_path, ghl_sim, gymdesk_sim, demo_data):
    ghl_seed, desk_seed = demo_data.seeds()
    ghl_sim.seed("contacts", ghl_seed["contacts"])
    gymdesk_sim.seed("members", desk_seed["members"])
    env = {**connection_env(ghl_sim.url, gymdesk_sim.url), "CRM_SYNC_HOME": str(tmp_path / "home"),
           **warehouse_env(warehouse_url)}

    run_dag(airflow_home, "ghl_gymdesk", env)

    ghl_people = by_email(ghl_sim.records("contacts"), GHL_FIELDS)
    desk_people = by_email(gymdesk_sim.records("members"), GYMDESK_FIELDS)
    for person in demo_data.expected:
        assert ghl_people.get(person["email"]) == [person], f"GHL holds the wrong record for {person['email']}"
        assert desk_people.get(person["email"]) == [person], f"Gymdesk holds the wrong record for {person['email']}"
    # Bad and ambiguous rows stay where they were and are not copied across.
    assert len(ghl_sim.records("contacts")) == len(demo_data.expected) + 2
    assert len(gymdesk_sim.records("members")) == len(demo_data.expected) + 5
    assert "broken.email@@example" not in ghl_people and "the.family@example.com" in ghl_people
    assert len(desk_people["the.family@example.com"]) == 2 and len(ghl_people["the.family@example.com"]) == 1

    engine = sa.create_engine(warehouse_url)
    with engine.connect() as conn:
        quarantined = conn.execute(sa.text(
            "SELECT q.side, q.source_id, q.rule, q.detail, r.payload FROM quarantine q "
            "JOIN raw_record r ON r.id = q.raw_id")).all()
    rules = sorted((row.side, row.source_id or "", row.rule) for row in quarantined)
    assert rules == [("app", "", "id_missing"), ("app", "mem_9001", "email_format"),
                     ("app", "mem_9002", "phone_format"), ("app", "mem_951", "ambiguous_match"),
                     ("app", "mem_952", "ambiguous_match"), ("ghl", "ghlBadPhone000000001", "phone_format"),
                     ("ghl", "ghlFamily00000000001", "ambiguous_match")]
    assert all(row.detail for row in quarantined)  # every row says what is wrong with it

    # Second run, nothing changed outside: no write, and no read beyond the two incremental searches.
    ghl_sim.reset_calls()
    gymdesk_sim.reset_calls()
    run_dag(airflow_home, "ghl_gymdesk", env)
    calls = {**ghl_sim.calls(), **gymdesk_sim.calls()}
    assert not any(calls.get(write) for write in WRITE_METHODS), calls
    assert calls.get("POST /contacts/search") == 1 and calls.get("GET /v1/members") == 1, calls
    engine.dispose()


def test_a_dry_run_plans_and_reports_every_write_but_sends_none(airflow_home, tmp_path, ghl_sim, gymdesk_sim,
                                                                 demo_data):
    ghl_seed, desk_seed = demo_data.seeds()
    ghl_sim.seed("contacts", ghl_seed["contacts"])
    gymdesk_sim.seed("members", desk_seed["members"])
    home = tmp_path / "home"
    env = {**connection_env(ghl_sim.url, gymdesk_sim.url), "CRM_SYNC_HOME": str(home),
           "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}"}

    run_dag(airflow_home, "ghl_gymdesk", env, "-c", json.dumps({"dry_run": True}))

    calls = {**ghl_sim.calls(), **gymdesk_sim.calls()}
    assert not any(calls.get(write) for write in WRITE_METHODS), calls
    report = json.loads(next((home / "reports" / "ghl_gymdesk").glob("*.json")).read_text())
    assert report["dry_run"] is True and report["writes_sent"] == 0
    planned = report["writes"]
    assert planned and all(w["status"] == "dry_run" for w in planned)
    conflict = next(w for w in planned if "(desk edit)" in str(w["payload"]) or "(GHL edit)" in str(w["payload"]))
    assert conflict["decisions"][0]["reason"].startswith("latest_wins")  # the diff says who won and why
    # ...and shows, for the side it would change, the value there now and the value it would hold.
    change = next(c for c in conflict["changes"] if c["field"] == "company_name")
    decision = next(d for d in conflict["decisions"] if d["field"] == "company_name")
    assert change["before"] == decision[conflict["side"]] and change["after"] == decision["value"]
    assert change["before"] != change["after"] and change["after"]
    page = next((home / "reports" / "ghl_gymdesk").glob("*.html")).read_text()
    assert f"<del>{change['before']}</del> &rarr; <ins>{change['after']}</ins>" in page

    run_dag(airflow_home, "ghl_gymdesk", env)  # the real run sends what the dry run planned

    ghl_people = by_email(ghl_sim.records("contacts"), GHL_FIELDS)
    desk_people = by_email(gymdesk_sim.records("members"), GYMDESK_FIELDS)
    for person in demo_data.expected:
        assert ghl_people.get(person["email"]) == [person] and desk_people.get(person["email"]) == [person]


def test_too_many_bad_rows_fail_the_run_at_validate_write_nothing_and_still_report(
        airflow_home, tmp_path, ghl_sim, gymdesk_sim):
    members = [{"id": f"mem_{n}", "first_name": f"M{n}", "email": f"m{n}@example.com", "phone": None,
                "updated_at": "2026-11-20T10:00:00.000Z"} for n in range(20)]
    for member in members[:4]:  # 4 of 20 (20%) break the email rule, over the 5% threshold
        member["email"] = member["email"].replace("@", "@@")
    gymdesk_sim.seed("members", members)
    home = tmp_path / "home"
    env = {**connection_env(ghl_sim.url, gymdesk_sim.url), "CRM_SYNC_HOME": str(home),
           "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}"}

    run_dag(airflow_home, "ghl_gymdesk", env, succeed=False)

    calls = {**ghl_sim.calls(), **gymdesk_sim.calls()}
    assert not any(calls.get(write) for write in WRITE_METHODS), calls
    assert ghl_sim.records("contacts") == []
    report = json.loads(next((home / "reports" / "ghl_gymdesk").glob("*.json")).read_text())
    assert report["failed_at"] == "validate"
    assert report["validate"]["bad_share"] == 0.2 and report["validate"]["passed"] is False
    assert sorted(q["rule"] for q in report["quarantine"]) == ["email_format"] * 4


def test_a_write_the_app_refuses_is_recorded_with_its_reason_and_the_rest_of_the_batch_goes_on(
        airflow_home, tmp_path, ghl_sim, gymdesk_sim, demo_data):
    ghl_seed, desk_seed = demo_data.seeds()
    long_company = {"id": "ghlLongCompany000001", "locationId": "demo-location", "firstName": "Long",
                    "lastName": "Name", "email": "long.company@example.com", "companyName": "X" * 150,
                    "tags": [], "dateAdded": "2026-11-01T00:00:00.000Z", "dateUpdated": "2026-11-20T00:00:00.000Z"}
    ghl_sim.seed("contacts", [*ghl_seed["contacts"], long_company])
    gymdesk_sim.seed("members", desk_seed["members"])
    home = tmp_path / "home"
    env = {**connection_env(ghl_sim.url, gymdesk_sim.url), "CRM_SYNC_HOME": str(home),
           "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}"}

    run_dag(airflow_home, "ghl_gymdesk", env)  # a refused row does not fail the run

    report = json.loads(next((home / "reports" / "ghl_gymdesk").glob("*.json")).read_text())
    failed = [w for w in report["writes"] if w["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["side"] == "app" and failed[0]["op"] == "create"
    assert "422" in failed[0]["last_error"] and "company must be at most 100 characters" in failed[0]["last_error"]
    assert failed[0]["payload"]["email"] == "long.company@example.com"  # the report names the record
    assert report["sides"]["app"]["failed"] == 1
    desk_people = by_email(gymdesk_sim.records("members"), GYMDESK_FIELDS)
    assert "long.company@example.com" not in desk_people
    for person in demo_data.expected:  # everyone else was written
        assert desk_people.get(person["email"]) == [person]

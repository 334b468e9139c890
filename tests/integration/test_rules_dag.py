"""A profile's rules (issue 27) through Airflow runs of its DAG against the simulators, on SQLite and
on PostgreSQL: every trigger, condition and action of tests/fixtures/rules_gymdesk.yaml.

The user relies on this: a first sync of an existing book fires only the new-contact rules; a dry run
shows what the rules would write, each row naming its rule, and sends nothing; the real run then sends
exactly that (the app's segment, a GHL custom field, tags, tasks with their rendered titles and due
times in the profile's zone, notes); the rules' own writes read back fire nothing and write nothing,
and neither does a quiet rerun. For every rule one record meets its conditions and fires, and one
record per condition has the trigger but fails the condition and does not fire.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from harness.demo_data import LOCATION_ID
from tests.conftest import connection_env, run_dag, warehouse_env
from tests.helpers import GHL_FIELDS, GYMDESK_FIELDS, by_email

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "rules_gymdesk.yaml"
EARLY = "2026-11-20T03:00:00.000Z"  # the book's last edits, weeks before the first sync
NEW_YORK = ZoneInfo("America/New_York")


def next_morning(moment: datetime) -> str:
    """09:00 in New York on the day after ``moment`` there, in UTC: a new person's "1 day, at 09:00",
    counted from when the sync first sees them."""
    day = (moment.astimezone(NEW_YORK) + timedelta(days=1)).date()
    return datetime.combine(day, time(9), NEW_YORK).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
# name: (where, lead source, company, phone, GHL tags, GHL custom field cf_score, member status)
PEOPLE = {
    "ana": ("ghl", "Website", None, None, [], None, None),  # web_lead fires
    "bo": ("ghl", "Website", None, None, ["staff"], None, None),  # fails {tag: staff, absent: true}
    "cy": ("ghl", "Walk-in", None, None, [], None, None),  # fails lead_source in [Website, Facebook]
    "dan": ("app", "Walk-in", None, None, None, None, "active"),  # desk_member fires
    "eve": ("app", "Walk-in", None, "+12025550101", None, None, "active"),  # fails phone empty: true
    "fay": ("app", "Walk-in", None, None, None, None, "lead"),  # fails app:status equals active
    "hal": ("both", "Walk-in", "Acme", None, [], None, "active"),  # company -> Globex: company_moved fires
    "ivy": ("both", "Walk-in", "Acme", None, [], None, "active"),  # company cleared: fails empty: false
    "jo": ("both", "Website", None, None, ["newsletter"], None, "active"),  # -> Referral: referred fires
    "kim": ("both", "Website", None, None, [], None, "active"),  # -> Referral, no newsletter tag: fails tag
    "lu": ("both", "Website", None, None, ["newsletter"], None, "active"),  # -> Facebook: fails `to`
    "lea": ("both", "Walk-in", None, None, [], "95", "active"),  # + vip, score > 90: vip fires
    "max": ("both", "Walk-in", None, None, ["founder"], "10", "active"),  # + vip, tags contain founder: fires
    "ned": ("both", "Walk-in", None, None, [], "50", "active"),  # + vip: fails any (score, founder)
    "oli": ("both", "Walk-in", None, None, ["paused"], "70", "active"),  # - paused: unpaused fires
    "pam": ("both", "Walk-in", None, None, ["paused"], "30", "active"),  # fails score gte 50
    "quin": ("both", "Walk-in", None, None, ["paused"], "100", "active"),  # fails score lt 100, lte 99
    "rob": ("both", "Website", None, None, [], None, "active"),  # appointments: see APPOINTMENTS
    "sam": ("both", "Walk-in", None, None, [], None, "active"),  # a no-show: fails contact.lead_source
    "tom": ("both", "Walk-in", None, None, ["to-call"], None, "active"),  # tasks: see TASKS
}
# id: (contact, title, start in days from now); each becomes a no-show after the first sync
APPOINTMENTS = {"ap_rob1": ("rob", "Intro class", -1),  # no_show fires
                "ap_rob2": ("rob", "Late class", 60),  # fails start lt +30d
                "ap_rob3": ("rob", "Missed class", -5),  # fails start gt -3d
                "ap_sam1": ("sam", "Intro class", -1)}  # fails contact.lead_source equals Website
# id: (title, due in days from now); each is completed in Gymdesk after the first sync
TASKS = {"tsk_tom1": ("First call", 1),  # call_done fires
         "tsk_tom2": ("Old call", -60),  # fails due_date gte -30d
         "tsk_tom3": ("Paperwork", 1)}  # fails title contains call
FIRED = {("web_lead", "ghl", "c_ana", 3), ("desk_member", "app", "mem_dan", 2),
         ("company_moved", "app", "mem_hal", 1), ("referred", "ghl", "c_jo", 1), ("vip", "ghl", "c_lea", 2),
         ("vip", "ghl", "c_max", 2), ("unpaused", "ghl", "c_oli", 3), ("no_show", "ghl", "ap_rob1", 2),
         ("call_done", "app", "tsk_tom1", 2)}  # (rule, side, record, writes)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def ghl_contact(name: str, stamp: str, **change) -> dict:
    _, source, company, phone, tags, score, _ = PEOPLE[name]
    contact = {"id": f"c_{name}", "locationId": LOCATION_ID, "email": f"{name}@example.com",
               "firstName": name.title(), "lastName": "Test", "source": source, "companyName": company,
               "phone": phone, "tags": tags, "dateAdded": EARLY, "dateUpdated": stamp,
               "customFields": [{"id": "cf_score", "value": score}] if score else []}
    return {k: v for k, v in {**contact, **change}.items() if v is not None}


def member(name: str, stamp: str, **change) -> dict:
    _, source, company, phone, _, _, status = PEOPLE[name]
    record = {"id": f"mem_{name}", "email": f"{name}@example.com", "first_name": name.title(),
              "last_name": "Test", "lead_source": source, "company": company, "phone": phone, "status": status,
              "created_at": EARLY, "updated_at": stamp}
    return {**record, **change}


def seed_book(ghl_sim, gymdesk_sim, now: datetime) -> None:
    """An existing book: people on one side or both, tom's tasks in Gymdesk, booked appointments in GHL."""
    ghl_sim.seed("contacts", [ghl_contact(n, EARLY) for n, p in PEOPLE.items() if p[0] != "app"])
    gymdesk_sim.seed("members", [member(n, EARLY) for n, p in PEOPLE.items() if p[0] != "ghl"])
    gymdesk_sim.seed("tasks", [task(task_id, "open", EARLY, now) for task_id in TASKS])
    for appointment_id, (name, title, days) in APPOINTMENTS.items():
        start = now.replace(microsecond=0) + timedelta(days=days)
        ghl_sim.admin.post("/appointments", json={
            "id": appointment_id, "locationId": LOCATION_ID, "contactId": f"c_{name}", "calendarId": "cal1",
            "title": title, "appointmentStatus": "confirmed", "startTime": iso(start),
            "endTime": iso(start + timedelta(hours=1))}).raise_for_status()


def task(task_id: str, status: str, stamp: str, now: datetime) -> dict:
    title, days = TASKS[task_id]
    return {"id": task_id, "member_id": "mem_tom", "title": title, "status": status, "description": None,
            "due_at": iso(now + timedelta(days=days)), "assignee": None, "created_at": EARLY, "updated_at": stamp}


def change_book(ghl_sim, gymdesk_sim, now: datetime) -> None:
    """What happens in both systems after the first sync: each rule's trigger, on every record above."""
    stamp = iso(datetime.now(UTC))
    gymdesk_sim.seed("members", [member("hal", stamp, company="Globex"), member("ivy", stamp, company=None)])
    ghl_sim.seed("contacts", [
        ghl_contact("jo", stamp, source="Referral"), ghl_contact("kim", stamp, source="Referral"),
        ghl_contact("lu", stamp, source="Facebook"),
        *(ghl_contact(n, stamp, tags=[*PEOPLE[n][4], "vip"]) for n in ("lea", "max", "ned")),
        *(ghl_contact(n, stamp, tags=[]) for n in ("oli", "pam", "quin"))])
    gymdesk_sim.seed("tasks", [task(task_id, "done", stamp, now) for task_id in TASKS])
    for appointment_id in APPOINTMENTS:
        ghl_sim.admin.post("/appointments", json={"id": appointment_id, "locationId": LOCATION_ID,
                                                  "contactId": f"c_{APPOINTMENTS[appointment_id][0]}",
                                                  "appointmentStatus": "noshow"}).raise_for_status()


def dag_env(tmp_path: Path, warehouse_url: str, ghl_sim, gymdesk_sim) -> dict[str, str]:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shutil.copy(FIXTURE, profiles / "gymdesk.yaml")
    return {**connection_env(ghl_sim.url, gymdesk_sim.url), "CRM_SYNC_HOME": str(tmp_path / "home"),
            "CRM_SYNC_PROFILES_DIR": str(profiles), **warehouse_env(warehouse_url)}


def sync(airflow_home, env, engine, sims, dry_run: bool = False) -> tuple[str, dict[str, int], dict[str, int]]:
    """One DAG run by Airflow: its run id, what its reconcile says fired, and the writes the simulators got."""
    for sim in sims:
        sim.reset_calls()
    run_dag(airflow_home, "ghl_gymdesk", env, *(["-c", json.dumps({"dry_run": True})] if dry_run else []))
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT run_id, stats FROM run_log WHERE step = 'reconcile' "
                                   "ORDER BY finished_at DESC")).first()
    stats = row.stats if isinstance(row.stats, dict) else json.loads(row.stats)
    calls = {k: v for sim in sims for k, v in sim.calls().items()}
    writes = {k: v for k, v in calls.items() if k.split()[0] in ("POST", "PUT", "PATCH", "DELETE")
              and not k.endswith("/search")}
    return row.run_id, stats.get("rules_fired", {}), writes


def fires(engine) -> set[tuple]:
    with engine.connect() as conn:
        return {(r.rule, r.side, r.source_id, r.writes, r.run_id, bool(r.dry_run))
                for r in conn.execute(sa.text("SELECT * FROM rule_fire"))}


def outbox(engine, run_id: str) -> list[tuple]:
    """The writes a run planned or sent (a dry run's rows are sent by the real run that plans them again)."""
    with engine.connect() as conn:
        return sorted((r.entity, r.side, r.op, r.rule or "", r.status) for r in conn.execute(
            sa.text("SELECT * FROM outbox WHERE :run IN (run_id, sent_run_id)"), {"run": run_id}))


def by_id(sim, collection: str) -> dict[str, dict]:
    return {record["id"]: record for record in sim.records(collection)}


def holdings(ghl_sim, gymdesk_sim) -> list[dict]:
    """Everything both simulators hold that a rule could change."""
    return [by_id(ghl_sim, "contacts"), by_id(ghl_sim, "tasks"), by_id(gymdesk_sim, "members"),
            by_id(gymdesk_sim, "tasks"), by_id(gymdesk_sim, "notes")]


def test_every_trigger_condition_and_action_through_airflow_runs(airflow_home, warehouse_url, tmp_path, ghl_sim,
                                                                  gymdesk_sim):
    now = datetime.now(UTC)
    seed_book(ghl_sim, gymdesk_sim, now)
    env = dag_env(tmp_path, warehouse_url, ghl_sim, gymdesk_sim)
    engine = sa.create_engine(warehouse_url)
    sims = (ghl_sim, gymdesk_sim)
    new_rules = {f for f in FIRED if f[0] in ("web_lead", "desk_member")}
    later = FIRED - new_rules

    # 1. The first sync: only the new-contact rules fire, each on the one record meeting its conditions.
    before = datetime.now(UTC)
    first, fired, _ = sync(airflow_home, env, engine, sims)
    ana_due = {next_morning(before), next_morning(datetime.now(UTC))}  # the run's clock is between the two
    assert fired == {"web_lead": 1, "desk_member": 1}
    assert fires(engine) == {(*f, first, False) for f in new_rules}
    members = {m["email"].split("@")[0]: m for m in gymdesk_sim.records("members")}
    contacts = {c["email"].split("@")[0]: c for c in ghl_sim.records("contacts")}
    assert members["ana"]["segment"] == "trial" and not members["bo"].get("segment") \
        and not members["cy"].get("segment")
    assert contacts["dan"]["tags"] == ["needs-phone"] and contacts["eve"]["tags"] == contacts["fay"]["tags"] == []
    ghl_tasks = [(t["contactId"], t["title"], t.get("body"), t["dueDate"]) for t in ghl_sim.records("tasks")
                 if t["title"].startswith("Call")]
    assert ghl_tasks == [("c_ana", "Call Ana (Website)", "Rule web_lead", ghl_tasks[0][3])]
    assert ghl_tasks[0][3][:19] in ana_due  # the day after the sync first saw her, at 09:00 in New York
    desk_tasks = {t["title"]: t for t in gymdesk_sim.records("tasks")}  # mirrored to the new member
    assert desk_tasks["Call Ana (Website)"]["member_id"] == members["ana"]["id"]
    assert desk_tasks["Call Ana (Website)"]["due_at"][:19] in ana_due
    assert [(n["member_id"], n["content"]) for n in gymdesk_sim.records("notes")] == [
        (members["dan"]["id"], "Ask Dan for a phone number")]

    # 2. Every trigger happens; a dry run plans each rule's writes, names the rule, and sends nothing.
    change_book(ghl_sim, gymdesk_sim, now)
    changed = holdings(ghl_sim, gymdesk_sim)
    dry, fired, writes = sync(airflow_home, env, engine, sims, dry_run=True)
    assert fired == {"company_moved": 1, "referred": 1, "vip": 2, "unpaused": 1, "no_show": 1, "call_done": 1}
    assert writes == {}
    assert holdings(ghl_sim, gymdesk_sim) == changed
    assert fires(engine) == {(*f, first, False) for f in new_rules} | {(*f, dry, True) for f in later}
    planned = outbox(engine, dry)
    assert {status for *_, status in planned} == {"dry_run"}
    named = {(entity, side, op, rule) for entity, side, op, rule, _ in planned if rule}
    assert named == {("contact", "ghl", "update", "company_moved"), ("contact", "app", "update", "referred"),
                     ("contact", "app", "update", "vip"), ("note", "app", "create", "vip"),
                     ("contact", "ghl", "update", "unpaused"), ("task", "app", "create", "unpaused"),
                     ("task", "ghl", "create", "unpaused"), ("task", "app", "create", "no_show"),
                     ("task", "ghl", "create", "no_show"), ("contact", "ghl", "update", "call_done")}

    # 3. The real run fires them again and sends what the dry run showed; the dry run keeps its own firings.
    real, fired, writes = sync(airflow_home, env, engine, sims)
    assert fired == {"company_moved": 1, "referred": 1, "vip": 2, "unpaused": 1, "no_show": 1, "call_done": 1}
    assert fires(engine) == {(*f, first, False) for f in new_rules} | {(*f, dry, True) for f in later} | {
        (*f, real, False) for f in later}
    sent = outbox(engine, real)
    assert {status for *_, status in sent} == {"sent"}
    assert {(entity, side, op, rule) for entity, side, op, rule, _ in sent if rule} == named
    members = {m["email"].split("@")[0]: m for m in gymdesk_sim.records("members")}
    contacts = {c["email"].split("@")[0]: c for c in ghl_sim.records("contacts")}
    segments = {name: m.get("segment") for name, m in members.items() if m.get("segment")}
    assert segments == {"ana": "trial", "jo": "referral", "lea": "vip", "max": "vip"}
    custom = {name: {f["id"]: f["value"] for f in c.get("customFields", [])} for name, c in contacts.items()}
    assert {name: f["cf_company_note"] for name, f in custom.items() if "cf_company_note" in f} == {
        "hal": "moved to Globex"}
    assert custom["oli"] == {"cf_score": "70"}  # a write to the contact kept its other custom fields
    tags = {name: sorted(c["tags"]) for name, c in contacts.items() if c["tags"]}
    assert tags == {"bo": ["staff"], "dan": ["needs-phone"], "jo": ["newsletter"], "lea": ["vip"],
                    "lu": ["newsletter"], "max": ["founder", "vip"], "ned": ["vip"], "oli": ["welcome-back"],
                    "tom": ["called"]}
    assert sorted((n["member_id"], n["content"]) for n in gymdesk_sim.records("notes")) == sorted([
        (members["dan"]["id"], "Ask Dan for a phone number"), (members["lea"]["id"], "Lea is a VIP now (vip)"),
        (members["max"]["id"], "Max is a VIP now (vip)")])
    people = by_email(ghl_sim.records("contacts"), GHL_FIELDS), by_email(gymdesk_sim.records("members"),
                                                                           GYMDESK_FIELDS)
    assert people[0] == people[1] and len(people[0]) == len(PEOPLE)  # the mapping: everyone alike on both sides
    desk_tasks = {t["title"]: t for t in gymdesk_sim.records("tasks")}
    ghl_tasks = {t["title"]: t for t in ghl_sim.records("tasks")}
    appointment = by_id(ghl_sim, "appointments")["ap_rob1"]
    follow_up = "Follow up Rob after Intro class"
    assert desk_tasks[follow_up]["member_id"] == "mem_rob" and ghl_tasks[follow_up]["contactId"] == "c_rob"
    assert desk_tasks[follow_up]["due_at"].startswith(iso(datetime.fromisoformat(
        appointment["dateUpdated"].replace("Z", "+00:00")) + timedelta(days=2))[:19])  # two days after the event
    welcome = "Welcome back Oli Test"
    assert desk_tasks[welcome]["member_id"] == "mem_oli" and ghl_tasks[welcome]["contactId"] == "c_oli"
    made = {title for title in desk_tasks if title.startswith(("Follow up", "Welcome back"))}
    assert made == {follow_up, welcome}  # sam, pam, quin and rob's other appointments got none
    assert {t["title"] for t in ghl_tasks.values() if t["completed"]} == {"First call", "Old call", "Paperwork"}

    # 4. The rules' own writes read back (an echo), then a quiet rerun: nothing fires, nothing is written.
    for label in ("echo", "quiet"):
        run_id, fired, writes = sync(airflow_home, env, engine, sims)
        assert (fired, writes, outbox(engine, run_id)) == ({}, {}, []), label
    assert fires(engine) == {(*f, first, False) for f in new_rules} | {(*f, dry, True) for f in later} | {
        (*f, real, False) for f in later}
    engine.dispose()

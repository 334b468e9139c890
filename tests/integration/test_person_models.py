"""The analysts' models as a user relies on them, kept current by the real ghl_gymdesk DAG (run by
Airflow against the simulators, on SQLite and on PostgreSQL): one person per person with both ids once
linked, people on one side only, quarantined and in review, activities of a linked pair in one row, an
edit's changelog row with before -> after and the winner, and an asset-triggered (webhook) run keeping
them current too. And every SQL query of docs/warehouse-models.md, run on both databases over known
data, returns the people it promises."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from harness.demo_data import LOCATION_ID, DemoData, build
from harness.simulators import ghl, gymdesk
from harness.simulators.base import ServerThread, SimState
from tests.conftest import GHL_TOKEN, GYMDESK_KEY, PG_ADMIN_URL, ROOT, Sim, connection_env, run_dag, warehouse_env

pytestmark = [pytest.mark.integration]
DOC = ROOT / "docs" / "warehouse-models.md"
EDITED = "Edited in GHL"


def _database(kind: str, folder: Path):
    """A fresh warehouse URL of ``kind`` and a function that drops it."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'warehouse.db'}", lambda: None
    name = f"crm_sync_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", drop


def table(url: str, name: str, order: str | None = None) -> list[dict]:
    """A warehouse table's rows, typed as the product reads them (JSON parsed, times aware)."""
    from crm_sync.warehouse.tables import metadata

    engine, found = sa.create_engine(url), metadata.tables[name]
    try:
        with engine.connect() as conn:
            query = sa.select(found).order_by(found.c[order] if order else sa.text("1"))
            return [dict(r._mapping) for r in conn.execute(query)]
    finally:
        engine.dispose()


@dataclass
class Synced:
    url: str
    env: dict[str, str]
    demo: DemoData
    ghl: Sim
    desk: Sim
    runs: list[str] = field(default_factory=list)
    people: list[list[dict]] = field(default_factory=list)  # after each run
    changelog: list[list[dict]] = field(default_factory=list)
    edited: str = ""  # the GHL contact edited before the third run

    def run(self, airflow_home, *args: str) -> None:
        run_dag(airflow_home, "ghl_gymdesk", self.env, *args)
        done = {r["run_id"] for r in table(self.url, "run_log") if r["step"] == "report"}
        self.runs.append(next(iter(done - set(self.runs))))
        self.people.append(table(self.url, "person", "person_id"))
        self.changelog.append(table(self.url, "sync_changelog", "outbox_id"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def synced(request, airflow_home, tmp_path_factory) -> Synced:
    """The demo's people, with a task in GHL: a dry run, a real run, then a real run after one GHL edit."""
    folder = tmp_path_factory.mktemp("person_models")
    url, drop = _database(request.param, folder)
    demo = build(datetime.now(UTC).date())
    grant = {"location_id": LOCATION_ID, "scopes": list(ghl.SCOPES)}
    with ServerThread(ghl.create_app(ghl.GHLSimulator({GHL_TOKEN: grant}, SimState()))) as ghl_server, \
            ServerThread(gymdesk.create_app(GYMDESK_KEY, SimState())) as desk_server:
        ghl_sim, desk_sim = Sim(ghl_server.url), Sim(desk_server.url)
        ghl_seed, desk_seed = demo.seeds()
        both = next(c for c in ghl_seed["contacts"] if c["id"].startswith("ghl00002"))
        ghl_sim.seed("contacts", ghl_seed["contacts"])
        ghl_sim.seed("tasks", [{"id": "taskPat0000000000001", "contactId": both["id"], "title": "Book a trial",
                                "body": "", "completed": False, "dueDate": "2026-11-21T15:00:00Z",
                                "dateAdded": both["dateAdded"]}])
        desk_sim.seed("members", desk_seed["members"])
        env = {**connection_env(ghl_sim.url, desk_sim.url), "CRM_SYNC_HOME": str(folder / "home"),
               **warehouse_env(url)}
        state = Synced(url, env, demo, ghl_sim, desk_sim)
        state.run(airflow_home, "-c", json.dumps({"dry_run": True}))
        state.run(airflow_home)
        edit(ghl_sim, both["id"])
        state.run(airflow_home)
        state.edited = both["id"]
        yield state
    drop()


def edit(ghl_sim: Sim, contact_id: str, company: str = EDITED) -> None:
    with httpx.Client(base_url=ghl_sim.url, timeout=30, headers={
            "Authorization": f"Bearer {GHL_TOKEN}", "Version": ghl.API_VERSION}) as api:
        api.put(f"/contacts/{contact_id}", json={"companyName": company}).raise_for_status()


def sides(demo: DemoData) -> tuple[set[str], set[str]]:
    """The expected people's emails in GHL and in Gymdesk as seeded."""
    wanted = {p["email"] for p in demo.expected}
    return ({c["email"].lower() for c in demo.ghl_contacts if c.get("email", "").lower() in wanted},
            {m["email"] for m in demo.gymdesk_members if m.get("email") in wanted})


@pytest.mark.slow
def test_a_dry_run_shows_one_side_people_quarantine_review_and_planned_writes(synced):
    people, (in_ghl, in_desk) = synced.people[0], sides(synced.demo)
    by_email = {p["email"]: p for p in people if p["email"]}
    for email in in_ghl - in_desk:
        assert by_email[email]["status"] == "ghl_only" and by_email[email]["app_id"] is None, email
    for email in in_desk - in_ghl:
        assert by_email[email]["status"] == "app_only" and by_email[email]["ghl_id"] is None, email
    by_app = {p["app_id"]: p for p in people if p["app_id"]}
    assert by_app["mem_9002"]["status"] == "quarantined"  # its phone broke a rule: never staged
    assert by_app["mem_951"]["status"] == by_app["mem_952"]["status"] == "review"
    planned = synced.changelog[0]
    assert planned and {w["status"] for w in planned} == {"planned"}
    assert all(w["before"] is None for w in planned if w["op"] == "create")
    update = next(w for w in planned if w["op"] == "update" and w["entity"] == "contact")
    assert set(update["before"]) == set(update["after"]) and update["person_id"] is not None


@pytest.mark.slow
def test_after_linking_each_person_is_one_row_with_both_ids_and_a_stable_id(synced):
    people = synced.people[1]
    for person in synced.demo.expected:
        rows = [p for p in people if p["email"] == person["email"]]
        assert len(rows) == 1, person["email"]
        assert rows[0]["ghl_id"] and rows[0]["app_id"] and rows[0]["status"] == "synced", rows[0]
        assert (rows[0]["first_name"], rows[0]["company_name"]) == (person["first_name"], person["company_name"])
        assert rows[0]["last_synced"] is not None
    before = {(p["ghl_id"] or p["app_id"]): p["person_id"] for p in synced.people[0]}
    for person in people:  # a person seen on one side in the dry run kept its id once linked
        if (person["ghl_id"] or "") in before or (person["app_id"] or "") in before:
            assert person["person_id"] in (before.get(person["ghl_id"]), before.get(person["app_id"]))
    assert len({p["person_id"] for p in people}) == len(people)


@pytest.mark.slow
def test_activities_of_a_linked_pair_are_one_row_with_both_sides(synced):
    acts = table(synced.url, "person_activity", "activity_id")
    people = {p["person_id"]: p for p in synced.people[-1]}
    trial = [a for a in acts if a["title"] == "Book a trial"]
    assert len(trial) == 1 and trial[0]["sides"] == "both" and trial[0]["app_id"], trial
    assert people[trial[0]["person_id"]]["ghl_id"] == synced.edited and trial[0]["status"] == "open"
    calls = [a for a in acts if a["title"] == "Call new lead"]
    desk_tasks = {t["id"] for t in synced.desk.records("tasks") if t["title"] == "Call new lead"}
    assert calls and {a["app_id"] for a in calls} == desk_tasks and {a["sides"] for a in calls} == {"both"}
    assert all(people[a["person_id"]]["app_id"] for a in calls)


@pytest.mark.slow
def test_an_edit_updates_the_person_and_appends_a_changelog_row_with_before_after_and_winner(synced):
    run = synced.runs[2]
    person = next(p for p in synced.people[2] if p["ghl_id"] == synced.edited)
    earlier = next(p for p in synced.people[1] if p["ghl_id"] == synced.edited)
    assert person["person_id"] == earlier["person_id"] and person["company_name"] == EDITED
    assert person["winners"]["company_name"] == {"side": "ghl", "reason": "only GHL changed it since the last sync",
                                                 "run_id": run}
    assert person["ghl_changed_at"] > earlier["ghl_changed_at"]
    assert {r["outbox_id"] for r in synced.changelog[1]} < {r["outbox_id"] for r in synced.changelog[2]}
    row = next(r for r in synced.changelog[2] if r["run_id"] == run and r["entity"] == "contact")
    assert (row["side"], row["op"], row["status"], row["sent_run_id"]) == ("app", "update", "sent", run)
    assert row["before"] == {"company_name": earlier["company_name"]} and row["after"] == {"company_name": EDITED}
    assert row["person_id"] == person["person_id"] and row["sent_at"] is not None
    assert any(d["field"] == "company_name" and d["winner"] == "ghl" for d in row["decisions"])


@pytest.mark.slow
def test_an_asset_triggered_run_keeps_them_current(synced, monkeypatch):
    from crm_sync.pipeline.context import RunContext
    from crm_sync.pipeline.extract import extract
    from crm_sync.pipeline.load import load
    from crm_sync.pipeline.reconcile import reconcile
    from crm_sync.pipeline.report import report
    from crm_sync.pipeline.stage import stage
    from crm_sync.pipeline.validate import validate
    from crm_sync.profile import profile_by_name
    from crm_sync.warehouse.db import engine

    for name, value in {**synced.env, "WAREHOUSE_URL": synced.url}.items():
        monkeypatch.setenv(name, value)
    engine.cache_clear()
    edit(synced.ghl, synced.edited, "Edited by a webhook")
    run_id = f"asset_triggered__{datetime.now(UTC).isoformat()}"
    ctx = RunContext(profile_by_name("gymdesk"), run_id, "asset_triggered", None, None)
    for side in ("ghl", "app"):
        extract(ctx, side)
    for step in (stage, validate, reconcile, load):
        step(ctx)
    stats = report(ctx)["people_models"]
    engine().dispose()
    engine.cache_clear()
    assert stats["full"] is False and stats["people"] >= 1 and stats["changelog"] >= 1
    person = next(p for p in table(synced.url, "person") if p["ghl_id"] == synced.edited)
    assert (person["company_name"], person["run_id"]) == ("Edited by a webhook", run_id)
    assert [r["after"] for r in table(synced.url, "sync_changelog") if r["run_id"] == run_id] == [
        {"company_name": "Edited by a webhook"}]


# --- the analysts' queries of docs/warehouse-models.md, over known data, on both databases ---------

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def queries() -> dict[str, str]:
    """Each ```sql block of the doc, by the heading above it."""
    found, heading, block = {}, None, None
    for line in DOC.read_text().splitlines():
        if block is not None:
            if line.startswith("```"):
                found[heading], block = "\n".join(block), None
            else:
                block.append(line)
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.strip() == "```sql":
            block = []
    return found


def _seed(url: str) -> None:
    """Five people through the real refresh: Ann (both sides, an overdue call), Ben (GHL only, a new lead
    whose first call is done), Cy (app only, a new lead whose first call is open, seen 30 hours ago),
    Di (both, seen 2 hours ago, first call open), Ed (both, an open task due tomorrow)."""
    from crm_sync.pipeline.context import RunContext
    from crm_sync.pipeline.people_models import refresh
    from crm_sync.profile import profile_by_name
    from crm_sync.warehouse.db import create, migrate
    from crm_sync.warehouse.tables import person, staging_contact, staging_record, xref

    engine = create(url)
    migrate(engine)

    def contact(side, sid, first, email):
        return {"profile": "gymdesk", "side": side, "source_id": sid, "first_name": first, "last_name": "Test",
                "email": email, "phone": "+14155550100", "company_name": None, "lead_source": None, "tags": None,
                "deleted": False, "updated_at": NOW, "content_hash": "h", "raw_id": None, "run_id": "r1",
                "external_id": None}

    def task(side, sid, cid, title, due, done):
        return {"profile": "gymdesk", "entity": "task", "side": side, "source_id": sid, "contact_id": cid,
                "fields": {"title": title, "completed": done, "due_date": due.strftime("%Y-%m-%dT%H:%M:%SZ")},
                "deleted": False, "updated_at": NOW, "content_hash": "h", "raw_id": None, "run_id": "r1"}

    pairs = {"ann": ("g-ann", "a-ann"), "ben": ("g-ben", None), "cy": (None, "a-cy"), "di": ("g-di", "a-di"),
             "ed": ("g-ed", "a-ed")}
    with engine.begin() as conn:
        conn.execute(sa.insert(staging_contact), [contact(side, sid, name.title(), f"{name}@example.com")
                                                   for name, ids in pairs.items()
                                                   for side, sid in zip(("ghl", "app"), ids, strict=True) if sid])
        conn.execute(sa.insert(xref), [{"profile": "gymdesk", "entity": "contact", "ghl_id": g, "app_id": a,
                                        "updated_at": NOW} for g, a in pairs.values() if g and a])
        conn.execute(sa.insert(staging_record), [
            task("ghl", "t-ann", "g-ann", "Follow-up reminder", NOW - timedelta(hours=5), False),
            task("ghl", "t-ben", "g-ben", "Call new lead", NOW - timedelta(hours=20), True),
            task("app", "t-cy", "a-cy", "Call new lead", NOW + timedelta(hours=1), False),
            task("ghl", "t-di", "g-di", "Call new lead", NOW + timedelta(hours=20), False),
            task("ghl", "t-ed", "g-ed", "Book a trial", NOW + timedelta(days=1), False)])
        refresh(conn, RunContext(profile_by_name("gymdesk"), "r1", "manual"))
        seen = {"cy@example.com": NOW - timedelta(hours=30), "di@example.com": NOW - timedelta(hours=2)}
        for email, moment in seen.items():
            conn.execute(sa.update(person).where(person.c.email == email).values(first_seen=moment))
    engine.dispose()


EXPECTED = {  # each query's heading in the doc (its start) -> the emails it must return
    "Overdue follow-ups": ["ann@example.com"],
    "Leads without a completed first call": ["cy@example.com"],
    "People in one system only": ["ben@example.com", "cy@example.com"],
}


def test_every_query_of_the_doc_returns_the_people_it_promises(warehouse_url):
    from crm_sync.warehouse.db import create
    from crm_sync.warehouse.tables import TS

    _seed(warehouse_url)
    found = queries()
    assert len(found) == len(EXPECTED), f"{DOC.name} has queries this test does not know: {list(found)}"
    engine = create(warehouse_url)
    try:
        with engine.connect() as conn:
            for heading, sql in found.items():
                wanted = next(emails for start, emails in EXPECTED.items() if heading.startswith(start))
                binds = {"profile": "gymdesk", "now": NOW, "cutoff": NOW - timedelta(hours=24),
                         "title": "Call new lead"}
                used = {name: value for name, value in binds.items() if re.search(rf":{name}\b", sql)}
                query = sa.text(sql).bindparams(*(sa.bindparam(name, type_=TS) for name in ("now", "cutoff")
                                                  if name in used))  # as the doc says: a UTC timestamp
                rows = conn.execute(query, used).mappings().all()
                assert sorted(r["email"] for r in rows) == wanted, (heading, rows)
    finally:
        engine.dispose()

"""The people search and the rules in a real browser inside the Airflow UI: a demo person in both systems
is found by a phone typed unlike either system writes it, and their page shows both records and the
timeline of both sides, each entry labelled with its side; the rules page shows the profile's rules in
words with their firings, and a rule's preview whom it would act on. A real api-server serves the
console over a warehouse seeded as a run leaves the models (crm_sync.pipeline.people_models' tables),
with harness/demo_data.py's people and harness/demo_apps.py's children."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import OWN_SHOTS as SHOTS, USER, sign_in  # and its console fixture
from tests.unit.test_console_people import person_row

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # an api-server and Chromium: about a minute
DAG, RUN = "ghl_gymdesk", "scheduled__2026-12-02T00:00:00+00:00"
TODAY = date(2026, 12, 3)
NOW = datetime(2026, 12, 3, 9, tzinfo=UTC)


def demo_person() -> tuple[dict, dict]:
    """The first demo person in both systems with a phone on each: (their GHL contact, their Gymdesk member)."""
    from harness.demo_data import build

    data = build(TODAY)
    ghl = {(c.get("email") or "").lower(): c for c in data.ghl_contacts}
    for member in data.gymdesk_members:
        contact = ghl.get((member.get("email") or "").lower())
        if contact and member.get("phone") and contact.get("phone") and "family" not in member["email"]:
            return contact, member
    raise AssertionError("the demo data has no person in both systems with a phone on each")


def staged(side: str, record_id: str, fields: dict) -> dict:
    from crm_sync.pipeline.normalize import email, phone, text

    return {"profile": "gymdesk", "side": side, "source_id": record_id, "email": email(fields["email"]),
            "phone": phone(fields["phone"], "US"), "first_name": text(fields["first_name"]),
            "last_name": text(fields["last_name"]), "company_name": text(fields["company_name"]),
            "lead_source": text(fields["lead_source"]), "tags": [], "updated_at": NOW - timedelta(days=1),
            "content_hash": "h", "run_id": RUN}


ACTIVITIES = (  # entity, GHL id, app id, title, due or dated: a task in GHL, a note in the app, a task synced
    ("task", "ghlTask0000000000000", None, "Send welcome pack", NOW + timedelta(days=3)),
    ("note", None, "note_1", "Asked about membership plan 0", NOW - timedelta(days=1)),
    ("task", "ghlTask0000000000001", "tsk_7000", "Intro session 1", NOW + timedelta(days=2)))
WON = {"field": "company_name", "winner": "app", "reason": "latest_wins: the app's is newer"}


@pytest.fixture
def warehouse(tmp_path, monkeypatch) -> str:
    """The demo person and five others as a run leaves them: staged, linked, a write sent; the models
    refreshed by the run's own refresh (crm_sync.pipeline.people_models), or as it writes them."""
    from crm_sync.warehouse.db import engine
    from crm_sync.warehouse.tables import staging_contact

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    monkeypatch.setenv("WAREHOUSE_URL", url)
    engine.cache_clear()
    contact, member = demo_person()
    ghl = staged("ghl", contact["id"], {"email": contact["email"], "phone": contact["phone"],
                                        "first_name": contact["firstName"], "last_name": contact["lastName"],
                                        "company_name": contact["companyName"], "lead_source": contact["source"]})
    app = staged("app", member["id"], {"email": member["email"], "phone": member["phone"],
                                       "first_name": member["first_name"], "last_name": member["last_name"],
                                       "company_name": member["company"], "lead_source": member["lead_source"]})
    others = [staged("ghl", f"other{n}", {"email": f"other{n}@example.com", "phone": f"+1415209{n:04d}",
                                          "first_name": "Other", "last_name": f"Person {n}", "company_name": None,
                                          "lead_source": None}) for n in range(5)]
    with engine().begin() as conn:
        conn.execute(sa.insert(staging_contact), [ghl, app, *others])
        try:
            from crm_sync.pipeline.people_models import refresh
        except ImportError:  # the models' refresh is not in this tree: its rows, as it writes them
            as_refreshed(conn, contact, member, ghl, app, others)
        else:
            as_run(conn, contact, member, ghl, app)
            refresh(conn, run_context(RUN))
    engine().dispose()
    engine.cache_clear()
    return url


def run_context(run_id: str):
    from crm_sync.pipeline.context import RunContext
    from crm_sync.profile import profile_by_name

    return RunContext(profile_by_name("gymdesk"), run_id, "scheduled", NOW - timedelta(days=1), NOW)


def as_run(conn: sa.Connection, contact: dict, member: dict, ghl: dict, app: dict) -> None:
    """What reconcile and load leave: the contacts linked, the app's company sent to GHL, the
    activities staged (the synced task linked)."""
    from crm_sync.warehouse.tables import outbox, staging_record, xref

    merged = {k: app[k] for k in ("email", "phone", "first_name", "last_name", "company_name", "lead_source")}
    link = conn.execute(sa.insert(xref).returning(xref.c.id).values(
        profile="gymdesk", entity="contact", ghl_id=contact["id"], app_id=member["id"], base={**merged, "tags": []},
        updated_at=NOW - timedelta(hours=20))).scalar_one()
    for entity, ghl_id, app_id, title, at in ACTIVITIES:
        fields = {"body": title, "date": at.isoformat()} if entity == "note" else \
            {"title": title, "due_date": at.isoformat(), "completed": False}
        for side, record_id, owner in (("ghl", ghl_id, contact["id"]), ("app", app_id, member["id"])):
            if record_id:
                conn.execute(sa.insert(staging_record).values(
                    profile="gymdesk", entity=entity, side=side, source_id=record_id, contact_id=owner, fields=fields,
                    updated_at=NOW - timedelta(days=1), content_hash="h", run_id=RUN))
        if ghl_id and app_id:
            conn.execute(sa.insert(xref).values(profile="gymdesk", entity=entity, ghl_id=ghl_id, app_id=app_id,
                                                base=fields, updated_at=NOW - timedelta(hours=20)))
    conn.execute(sa.insert(outbox).values(
        profile="gymdesk", run_id=RUN, entity="contact", side="ghl", op="update", xref_id=link,
        target_id=contact["id"], payload={"company_name": member["company"]}, merged=merged,
        before={"company_name": contact["companyName"]}, decisions=[{**WON, "ghl": contact["companyName"],
                                                                    "app": member["company"]}],
        idempotency_key="demo-1", status="sent", created_at=NOW - timedelta(hours=21),
        sent_at=NOW - timedelta(hours=20), sent_run_id=RUN))


def as_refreshed(conn: sa.Connection, contact: dict, member: dict, ghl: dict, app: dict, others: list[dict]) -> None:
    """The models' rows as people_models.refresh writes them after `as_run` (crm_sync.pipeline.people_models)."""
    from crm_sync.warehouse.tables import person, person_activity, sync_changelog

    sides = [{**row, "id": row["source_id"]} for row in (ghl, app)]
    conn.execute(sa.insert(person).values(person_row(
        "gymdesk", 1, sides[0], sides[1], "synced", NOW - timedelta(hours=20), company_name=app["company_name"],
        lead_source=app["lead_source"], winners={"company_name": {"side": "app", "reason": WON["reason"],
                                                                  "run_id": RUN}})))
    conn.execute(sa.insert(person), [person_row("gymdesk", 2 + n, {**row, "id": row["source_id"]}, None, "ghl_only",
                                                NOW - timedelta(days=2)) for n, row in enumerate(others)])
    conn.execute(sa.insert(person_activity), [
        {"profile": "gymdesk", "entity": entity, "person_id": 1, "ghl_id": ghl_id, "app_id": app_id,
         "sides": "both" if ghl_id and app_id else "ghl" if ghl_id else "app", "title": title,
         "status": None if entity == "note" else "open", "at_utc": at, "at_local": at.isoformat(), "zone": "UTC",
         "run_id": RUN, "updated_at": NOW} for entity, ghl_id, app_id, title, at in ACTIVITIES])
    conn.execute(sa.insert(sync_changelog).values(
        outbox_id=1, profile="gymdesk", entity="contact", side="ghl", op="update", person_id=1,
        record_id=contact["id"], before={"company_name": contact["companyName"]},
        after={"company_name": member["company"]}, status="sent", run_id=RUN, sent_run_id=RUN, decisions=[WON],
        planned_at=NOW - timedelta(hours=21), sent_at=NOW - timedelta(hours=20)))


def test_a_person_is_found_by_a_phone_typed_any_way_and_shows_both_sides(console, browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url, password = console
    contact, member = demo_person()
    digits = re.sub(r"\D", "", contact["phone"])[-10:]  # "+1 415-201-1001" -> 4152011001
    typed = f"{digits[:3]}.{digits[3:6]}.{digits[6:]}"  # GHL has "+1 415-...", the gym "(415) ...": neither
    assert typed not in (contact["phone"], member["phone"])
    SHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(browser, url, USER, password)

    browser.get(f"{url}/crm-sync/dags/{DAG}")  # the profile's runs, inside the UI
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    browser.find_element(By.LINK_TEXT, "People").click()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#people tr td:first-child a")) == 6  # everyone, first
    search = browser.find_element(By.NAME, "q")
    search.send_keys(typed, Keys.ENTER)
    found = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: b.find_element(By.CSS_SELECTOR, ".pager .shown").text == "1-1 of 1")  # the search's page
    assert found
    rows = browser.find_elements(By.CSS_SELECTOR, "#people tr td:first-child a")
    assert [row.text for row in rows] == [f"{contact['firstName']} {contact['lastName']}"]  # Liam Müller alone
    browser.switch_to.default_content()
    browser.save_screenshot(str(SHOTS / "people-search.png"))
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    rows[0].click()

    name = browser.find_element(By.ID, "person-name").text
    assert name == f"{contact['firstName']} {contact['lastName']}"
    records = browser.find_element(By.ID, "records").text
    assert contact["id"] in records and member["id"] in records
    assert f"{member['company']} latest_wins" not in records and "app (gymdesk) latest_wins" in records
    timeline = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#activities tr")[1:]]
    assert len(timeline) == 3, timeline
    assert timeline[0].startswith("2026-12-06 09:00") and timeline[0].endswith("GHL")  # newest first
    assert "Send welcome pack" in timeline[0]
    assert "Intro session 1" in timeline[1] and timeline[1].endswith("both")
    assert "Asked about membership plan 0" in timeline[2] and timeline[2].endswith("app (gymdesk)")
    history = browser.find_element(By.ID, "history").text
    assert "update contact in GHL" in history and RUN in history
    browser.switch_to.default_content()
    assert "/plugin/crm-sync" in browser.current_url  # inside the Airflow UI, under its crm-sync entry
    browser.save_screenshot(str(SHOTS / "person.png"))


def test_the_rules_page_shows_each_rule_and_a_preview_of_whom_it_would_act_on(console, browser, warehouse):
    """The DAG's page links to its rules: the profile's new-contact tasks, read as rules, in words with
    how often they fired in the run; the preview lists the demo member, a new contact of the app with
    a lead source, and the GHL task it would get, without writing anything."""
    from selenium.webdriver.common.by import By

    from crm_sync.warehouse.tables import outbox, rule_fire, run_log

    url, password = console
    _, member = demo_person()
    eng = sa.create_engine(warehouse)
    with eng.begin() as conn:  # the run fired the first new-contact task's rule once, two writes
        conn.execute(sa.insert(run_log).values(profile="gymdesk", run_id=RUN, step="reconcile", side="-",
                                               run_type="scheduled", stats={}, finished_at=NOW, dry_run=False))
        conn.execute(sa.insert(rule_fire).values(
            profile="gymdesk", run_id=RUN, rule="new_contact_task_1", event="new_contact on app", entity="contact",
            side="app", source_id=member["id"], fire_key="e2e-1", writes=2, dry_run=False, fired_at=NOW))
    with eng.connect() as conn:
        writes = conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()
    SHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(browser, url, USER, password)

    browser.get(f"{url}/crm-sync/dags/{DAG}")
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    browser.find_element(By.LINK_TEXT, "Rules").click()
    rule = browser.find_element(By.ID, "rule-new_contact_task_1")
    assert "When a new contact appears in the app" in rule.text and "lead_source is not empty" in rule.text
    assert "Fired 1 time in 1 run, 2 writes" in rule.text
    runs = browser.find_element(By.ID, "rule-runs").text
    assert RUN in runs and "1 (2)" in runs
    browser.switch_to.default_content()
    browser.save_screenshot(str(SHOTS / "rules.png"))
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    rule.find_element(By.CSS_SELECTOR, "a.preview").click()

    assert browser.find_element(By.TAG_NAME, "h1").text == "Preview of new_contact_task_1"
    table = browser.find_element(By.ID, "preview").text
    name = " ".join(f"{member['first_name']} {member['last_name']}".split())  # as staged: spaces tidied
    assert member["id"] in table and name in table
    assert "create a task in GHL: 'Call new lead', due" in table
    assert "Nothing is written." in browser.find_element(By.ID, "preview-scope").text
    browser.switch_to.default_content()
    assert "/plugin/crm-sync" in browser.current_url and "rules/preview" in browser.current_url
    browser.save_screenshot(str(SHOTS / "rule-preview.png"))
    with eng.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one() == writes
        assert conn.execute(sa.select(sa.func.count()).select_from(rule_fire)).scalar_one() == 1
    eng.dispose()

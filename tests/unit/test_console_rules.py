"""A profile's rules page and a rule's preview as a logged-in user sees them, in-process against a SQLite
warehouse seeded as runs leave it (staged contacts, a link, rule firings of a real run and a dry run):
each rule in plain words, how often it fired per recent run (newest first) and in all, the DAG's page
linking to it; the preview lists the records the rule would act on now with what it would write,
writes nothing, and an unknown rule is a 404 that says which rules there are."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crm_sync.paths import PROJECT_ROOT
from crm_sync.profile import parse_profile
from crm_sync.warehouse.tables import outbox, rule_fire, run_log, staging_contact, xref
from crm_sync.web import security, services
from crm_sync.web.app import create_app

DAG = "ghl_gymdesk"
RULES = """
rules:
  - name: web_leads_to_trial
    description: Web leads start as trial members.
    when: {new_contact: ghl}
    if: {all: [{field: lead_source, in: [Website, Facebook]}, {tag: staff, absent: true}]}
    then:
      - set: {side: app, field: segment, value: trial}
      - create_task: {side: ghl, title: "Call {first_name}", due: {days: 1, at: "09:00"}}
  - name: vip_note
    when: {tag_added: vip, side: ghl}
    then:
      - create_note: {side: app, body: "{first_name} is a VIP now"}
  - name: quiet_one
    enabled: false
    when: {tag_added: quiet}
    then:
      - add_tag: {side: ghl, tag: quiet_seen}
"""
T0 = datetime(2026, 12, 1, tzinfo=UTC)
OLD, NEW = "scheduled__2026-12-01T00:00:00+00:00", "manual__2026-12-02T09:00:00+00:00"


@pytest.fixture(scope="module")
def profile():
    text = (PROJECT_ROOT / "include/profiles/gymdesk.yaml").read_text()
    text = text.replace("      lead_source: {app: lead_source, fallback: Gymdesk}\n",
                        "      lead_source: {app: lead_source, fallback: Gymdesk}\n      tags: {app: null}\n")
    return parse_profile(text + RULES, "gymdesk.yaml")


@pytest.fixture
def client(sqlite_warehouse, profile):
    """The console with Airflow's login stood in for (test_console_access.py holds that the real
    dependencies refuse everyone else), over this profile."""
    app = create_app()
    for depends in (*security.LOGGED_IN, *security.READ_DAG, *security.READ_RUNS, *security.READ_TASK_LOGS):
        app.dependency_overrides[depends.dependency] = lambda: None
    app.dependency_overrides[security.may_read_task_logs] = lambda: False
    app.dependency_overrides[services.profile_of] = lambda dag_id: profile
    return TestClient(app)


def contact(side: str, source_id: str, first: str, source: str, tags: list[str], hours: int) -> dict:
    return {"profile": "gymdesk", "side": side, "source_id": source_id, "email": f"{first.lower()}@example.org",
            "first_name": first, "last_name": "Doe", "lead_source": source, "tags": tags,
            "updated_at": T0 + timedelta(hours=hours), "content_hash": "h", "run_id": OLD}


def fire(run_id: str, rule: str, source_id: str, writes: int, dry_run: bool = False) -> dict:
    return {"profile": "gymdesk", "run_id": run_id, "rule": rule, "event": "e", "entity": "contact", "side": "ghl",
            "source_id": source_id, "fire_key": f"{run_id}{rule}{source_id}", "writes": writes, "dry_run": dry_run,
            "fired_at": T0}


@pytest.fixture
def warehouse(sqlite_warehouse):
    """Ana (a web lead, linked to member mem_1), Bo (a web lead but staff), Cy (a walk-in); an older
    real run fired the trial rule twice, the newer dry run the VIP note once."""
    with sqlite_warehouse.begin() as conn:
        conn.execute(sa.insert(staging_contact), [
            contact("ghl", "c_ana", "Ana", "Website", [], 3), contact("ghl", "c_bo", "Bo", "Website", ["staff"], 2),
            contact("ghl", "c_cy", "Cy", "Walk-in", [], 1), contact("app", "mem_1", "Ana", "Website", [], 3)])
        conn.execute(sa.insert(xref).values(profile="gymdesk", entity="contact", ghl_id="c_ana", app_id="mem_1",
                                            base={}, updated_at=T0))
        conn.execute(sa.insert(run_log), [
            {"profile": "gymdesk", "run_id": run_id, "step": "reconcile", "side": "-", "run_type": kind,
             "stats": {}, "finished_at": at, "dry_run": dry}
            for run_id, kind, at, dry in ((OLD, "scheduled", T0, False),
                                          (NEW, "manual", T0 + timedelta(days=1), True))])
        conn.execute(sa.insert(rule_fire), [fire(OLD, "web_leads_to_trial", "c_ana", 3),
                                            fire(OLD, "web_leads_to_trial", "c_dee", 2),
                                            fire(NEW, "vip_note", "c_ana", 1, dry_run=True)])
    return sqlite_warehouse


def words(page: str, element_id: str) -> str:
    """An element's text, tags stripped, entities unescaped, spaces folded."""
    found = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, f"no #{element_id} on the page"
    inline = re.sub(r"</?(code|b|span|a)\b[^>]*>", "", found[2])
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", inline)).split())


def test_the_dags_page_links_to_its_rules(client, warehouse):
    page = client.get(f"/dags/{DAG}")
    assert page.status_code == 200 and f'href="/dags/{DAG}/rules">Rules</a>' in page.text


def test_each_active_rule_shows_in_words_with_how_often_it_fired_per_run(client, warehouse):
    answer = client.get(f"/dags/{DAG}/rules")
    assert answer.status_code == 200, answer.text
    page = answer.text

    trial = words(page, "rule-web_leads_to_trial")
    assert "Web leads start as trial members." in trial
    assert 'When a new contact appears in GHL' in trial
    assert 'all of these hold: lead_source is one of "Website", "Facebook" the contact does not have tag "staff"' \
        in trial
    assert 'set the app\'s field segment to "trial"' in trial
    assert 'create a task in GHL: "Call {first_name}", due 1 day after the event, at 09:00 (UTC)' in trial
    assert "Fired 2 times in 1 run, 5 writes" in trial
    assert f'href="/dags/{DAG}/rules/preview?rule=web_leads_to_trial"' in page
    assert 'When tag "vip" is added to a contact in GHL' in words(page, "rule-vip_note")
    # the profile's new_contact_tasks run as rules too, and say so
    legacy = words(page, "rule-new_contact_task_1")
    assert "new_contact_tasks" in legacy and 'a new contact appears in the app' in legacy
    assert "lead_source is not empty" in legacy and "Never fired" in legacy
    assert "quiet_one" not in re.sub(r"Disabled.*", "", page) and "Disabled (enabled: false): quiet_one." in \
        html.unescape(re.sub(r"<[^>]+>", "", page))

    table = words(page, "rule-runs")
    assert table.index(NEW) < table.index(OLD)  # newest run first
    rows = re.findall(r"<tr><td><a[^>]*>([^<]+)</a></td>(.*?)</tr>", page.split('id="rule-runs"')[1], re.S)
    cells = {html.unescape(run): [" ".join(re.sub(r"<[^>]+>", " ", c).split())
                                  for c in re.findall(r'<td class="num">(.*?)</td>', row)] for run, row in rows}
    order = [name for name in re.findall(r'<th class="num"><a href="#rule-(\w+)">', page)]
    assert cells[NEW][order.index("vip_note")] == "1 (1) dry run"
    assert cells[NEW][order.index("web_leads_to_trial")] == "-"
    assert cells[OLD][order.index("web_leads_to_trial")] == "2 (5)"
    assert re.search(r'id="total-web_leads_to_trial"><b>2</b> <span class="muted">\(5\)</span>', page)


def test_a_preview_lists_the_records_a_rule_would_act_on_and_writes_nothing(client, warehouse):
    with warehouse.connect() as conn:
        before = [conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                  for t in (outbox, rule_fire, xref)]
    answer = client.get(f"/dags/{DAG}/rules/preview", params={"rule": "web_leads_to_trial"})
    assert answer.status_code == 200, answer.text
    page = answer.text

    table = words(page, "preview")
    assert "GHL c_ana Ana Doe" in table and "c_bo" not in table and "c_cy" not in table  # staff, walk-in: not met
    assert "set segment to 'trial' in the app (contact mem_1)" in table
    assert "create a task in GHL: 'Call Ana', due " in table and "(contact c_ana)" in table
    due = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d 09:00")
    assert due in table  # a day after now, at 09:00 in the profile's zone (UTC)
    scope = words(page, "preview-scope")
    assert "Nothing is written." in scope and "Read 3 of 3 records" in scope and "1 would be acted on" in scope
    assert '<option selected>web_leads_to_trial</option>' in page  # the choice, to pick another
    with warehouse.connect() as conn:
        assert [conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (outbox, rule_fire, xref)] == before

    vip = words(client.get(f"/dags/{DAG}/rules/preview?rule=vip_note").text, "preview")
    assert vip.index("c_ana") < vip.index("c_bo") < vip.index("c_cy")  # newest changed first
    assert "create a note in the app: 'Bo is a VIP now': nothing written, the contact is not in the app" in vip


def test_a_preview_of_an_unknown_rule_is_a_404_naming_the_rules_and_no_rule_shows_the_choice(client, warehouse):
    page = client.get(f"/dags/{DAG}/rules/preview?rule=quiet_one", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert "has no active rule &#39;quiet_one&#39;" in page.text and "web_leads_to_trial" in page.text
    as_json = client.get(f"/dags/{DAG}/rules/preview?rule=nope", headers={"Accept": "application/json"})
    assert as_json.status_code == 404 and as_json.json()["detail"] == (
        f"{DAG} has no active rule 'nope' (its rules: new_contact_task_1, new_contact_task_2, web_leads_to_trial, "
        "vip_note)")
    choice = client.get(f"/dags/{DAG}/rules/preview")
    assert choice.status_code == 200 and 'id="preview"' not in choice.text
    assert re.findall(r"<option>(\w+)</option>", choice.text) == [
        "new_contact_task_1", "new_contact_task_2", "web_leads_to_trial", "vip_note"]


def test_a_run_report_names_each_writes_rule_and_the_rules_fired(client, warehouse):
    from urllib.parse import quote

    with warehouse.begin() as conn:
        conn.execute(sa.insert(outbox), [
            {"profile": "gymdesk", "run_id": OLD, "entity": "contact", "side": "app", "op": "update", "xref_id": 1,
             "target_id": target, "payload": payload, "merged": {}, "decisions": [], "idempotency_key": key,
             "status": "pending", "created_at": T0, "rule": rule}
            for target, payload, key, rule in (
                ("mem_1", {"@set": {"segment": "trial"}, "first_name": "Ana"}, "k1", "vip_note,web_leads_to_trial"),
                ("mem_2", {"first_name": "Bo"}, "k2", None))])
    answer = client.get(f"/dags/{DAG}/runs/{quote(OLD, safe='')}")
    assert answer.status_code == 200, answer.text
    page = answer.text

    fired = words(page, "rules-fired-table")
    assert fired == "rule times fired writes web_leads_to_trial 2 5"
    assert 'href="?q=web_leads_to_trial#writes-heading">web_leads_to_trial</a>' in page  # its writes, searched
    assert f'href="/dags/{DAG}/rules" id="rules-link"' in page
    written = page.split('<table id="writes">')[1]
    rows = re.findall(r'<tr><td>contact</td><td>app</td><td>update</td><td>(mem_\d)</td>'
                      r'.*?<td class="rule">([^<]*)</td>', written, re.S)
    assert rows == [("mem_1", "vip_note, web_leads_to_trial"), ("mem_2", "")]  # the mapping's own: no rule
    searched = client.get(f"/dags/{DAG}/runs/{quote(OLD, safe='')}?q=vip_note").text.split('<table id="writes">')[1]
    assert "mem_1" in searched and "mem_2" not in searched
    as_json = client.get(f"/api/dags/{DAG}/runs/{quote(OLD, safe='')}").json()
    assert as_json["rules_fired"] == [{"rule": "web_leads_to_trial", "fired": 2, "writes": 5, "dry_run": False}]
    assert [w["rules"] for w in as_json["writes"]] == [["vip_note", "web_leads_to_trial"], []]

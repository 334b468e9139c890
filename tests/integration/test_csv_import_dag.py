"""The ghl_csv_import DAG: a spreadsheet export becomes GHL contacts with tags and notes, run by Airflow."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.conftest import GHL_TOKEN, LOCATION_ID, run_dag

pytestmark = [pytest.mark.integration]

CSV = (
    "Email,First Name,Last Name,Phone,Company,Tags,Notes\n"
    "ava@example.com,Ava,Garcia,(415) 201-1001,Acme,vip;trial,Asked about family plans\n"
    "ben@example.com,Ben,Okafor,,,,\n"               # already in GHL: gets the tag added, keeps his phone
    "not-an-email,Broken,Row,,,,\n"                   # invalid email: quarantined with its line
    "ava@example.com,Ava,Again,,,,\n"                 # duplicate of line 2
    "cleo@example.com,Cleo,Ng,415-201-1003,,newsletter,\n"
)
# Saved by Excel as "CSV UTF-8" (a BOM, CRLF), with a quote left open: Dan's row is quarantined and
# Eve's note stays Eve's (it used to be swallowed into Dan's note).
EXCEL_CSV = ("\ufeffEmail,First Name,Last Name,Phone,Company,Tags,Notes\r\n"
             'dan@example.com,Dan,Lee,,,,"Prefers mornings\r\n'
             "eve@example.com,Eve,Park,,,,Private: allergic to latex\r\n")


def test_a_csv_file_imports_contacts_with_notes_and_tags_and_reports_every_bad_line(
        airflow_home, tmp_path, ghl_sim):
    ghl_sim.seed("contacts", [{"id": "ghlBen0000000000001", "locationId": LOCATION_ID, "email": "ben@example.com",
                               "firstName": "Ben", "lastName": "Okafor", "phone": "+14152019999",
                               "tags": ["member"], "dateAdded": "2026-11-01T00:00:00.000Z",
                               "dateUpdated": "2026-11-01T00:00:00.000Z"}])
    home = tmp_path / "home"
    folder = home / "imports" / "csv_import"
    folder.mkdir(parents=True)
    (folder / "people.csv").write_text(CSV, encoding="utf-8")
    (folder / "excel.csv").write_bytes(EXCEL_CSV.encode("utf-8"))
    env = {"AIRFLOW_CONN_GHL_DEFAULT": json.dumps({"conn_type": "ghl", "host": ghl_sim.url, "password": GHL_TOKEN,
                                                   "extra": {"location_id": LOCATION_ID}}),
           "CRM_SYNC_HOME": str(home), "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}"}

    run_dag(airflow_home, "ghl_csv_import", env)

    people = {c["email"]: c for c in ghl_sim.records("contacts")}
    assert set(people) == {"ava@example.com", "ben@example.com", "cleo@example.com", "eve@example.com"}
    ava = people["ava@example.com"]
    assert (ava["firstName"], ava["lastName"], ava["phone"], ava["companyName"]) == (
        "Ava", "Garcia", "+14152011001", "Acme")
    assert sorted(ava["tags"]) == ["trial", "vip"] and ava["source"] == "CSV import"
    assert sorted(people["ben@example.com"]["tags"]) == ["member"]  # CSV row had no tags: nothing removed
    assert people["ben@example.com"]["phone"] == "+14152019999"
    assert sorted(people["cleo@example.com"]["tags"]) == ["newsletter"]
    notes = ghl_sim.records("notes")
    assert sorted((n["contactId"], n["body"]) for n in notes) == sorted([
        (ava["id"], "Asked about family plans"), (people["eve@example.com"]["id"], "Private: allergic to latex")])

    report = json.loads(next((home / "reports" / "ghl_csv_import").glob("*.json")).read_text())
    bad = sorted((q["rule"], q["detail"].split(":")[0]) for q in report["quarantine"])
    assert bad == [("csv_format", "excel.csv line 2"), ("csv_format", "people.csv line 5"),
                   ("email_format", "people.csv line 4")]
    assert any("unclosed quote" in q["detail"] for q in report["quarantine"])
    assert report["sides"]["app"]["extracted"] == 9 and report["sides"]["app"]["quarantined"] == 3

    # Re-reading the same file writes nothing.
    ghl_sim.reset_calls()
    run_dag(airflow_home, "ghl_csv_import", env)
    calls = ghl_sim.calls()
    assert not any(k.startswith(("POST /contacts/upsert", "PUT", "POST /contacts/{contact_id}")) for k in calls), calls
    engine = sa.create_engine(env["WAREHOUSE_URL"])
    with engine.connect() as conn:
        writes = conn.execute(sa.text("SELECT entity, side, op, status FROM outbox ORDER BY id")).all()
    # Three new people, Ben's missing lead source (the profile's fallback), two notes: each sent once.
    assert sorted(map(tuple, writes)) == [("contact", "ghl", "create", "sent")] * 3 + [
        ("contact", "ghl", "update", "sent")] + [("note", "ghl", "create", "sent")] * 2, writes
    assert people["ben@example.com"]["source"] == "CSV import"
    engine.dispose()

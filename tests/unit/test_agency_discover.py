"""Discovery refreshes the agency's book in a real (SQLite) warehouse from what GHL lists: keys given once
and kept, clashing ids told apart, uninstalls marked once, reinstalls back, app connections looked up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from crm_sync.agency_dag import build_discover_dag  # at import: croniter's first import runs `file`
from crm_sync.hooks.agency import InstalledLocation
from crm_sync.pipeline.discover import confirmed, new_key, refresh_book
from crm_sync.profile import parse_profile
from crm_sync.profile_agency import book_of
from crm_sync.warehouse.db import create, migrate

from tests.fixtures import agency_profile_text

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path):
    engine = create(f"sqlite:///{tmp_path / 'warehouse.db'}")
    migrate(engine)
    with engine.begin() as connection:
        yield connection
    engine.dispose()


def listed(*ids: str, uninstalled: tuple[str, ...] = ()) -> list[InstalledLocation]:
    """What AgencyHook.installed_locations yields."""
    return [InstalledLocation(i, f"Gym {i}", f"{n} Main St", i not in uninstalled, "2026-11-01T08:00:00.000Z")
            for n, i in enumerate(ids)]


def test_a_key_is_the_id_in_lower_case_and_a_clash_gets_six_hex_of_its_sha1():
    assert new_key("AbC12", {}) == "abc12"
    assert new_key("AbC12", {"abc12": "AbC12"}) == "abc12"  # its own key
    assert new_key("abc12", {"abc12": "AbC12"}) == "abc12_" + __import__("hashlib").sha1(b"abc12").hexdigest()[:6]
    assert new_key("Loc-9.x", {}) == "loc_9_x"  # a key is a name suffix: [a-z0-9_] only


@pytest.mark.parametrize("location_id, key", [("_Loc", "loc"), ("a__b", "a_b"), ("a-_b", "a_b"), ("Loc_", "loc"),
                                              ("-.-", "loc"), ("__", "loc")])
def test_a_key_never_starts_with_an_underscore_nor_holds_the_names_separator(location_id, key):
    import hashlib
    import re

    assert new_key(location_id, {}) == key
    clash = new_key(location_id, {key: "another"})
    assert clash == f"{key}_{hashlib.sha1(location_id.encode()).hexdigest()[:6]}"
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9_]*", k) and "__" not in k for k in (key, clash))


def test_discovery_inserts_keeps_keys_marks_uninstalls_once_and_brings_reinstalls_back(conn):
    profile = parse_profile(agency_profile_text(), "agency.yaml")
    exists = {"gymdesk_LocA", "gymdesk_downtown"}.__contains__
    counts = refresh_book(conn, profile, listed("LocA", "locA", "Xy12AbCdEfGh34IjKl56", "LocW"), exists, T0)
    assert counts == {"discovered": 4, "new": 4, "newly_uninstalled": 0, "reinstalled": 0, "installed": 4,
                      "syncing": 2, "waiting": 2, "uninstalled": 0}
    book = {row.location_id: row for row in book_of(conn, "agency")}
    assert book["LocA"].key == "loca" and book["locA"].key.startswith("loca_") and len(book["locA"].key) == 11
    # the mapping before the naming rule; the rule's connection missing: waiting
    assert (book["Xy12AbCdEfGh34IjKl56"].app_conn_id, book["Xy12AbCdEfGh34IjKl56"].status) == (
        "gymdesk_downtown", "syncing")
    assert (book["LocW"].app_conn_id, book["LocW"].status) == ("gymdesk_LocW", "waiting")
    assert book["LocA"].installed_at == datetime(2026, 11, 1, 8, tzinfo=UTC) and book["LocA"].address == "0 Main St"

    # LocA uninstalled (not listed), LocW listed as not installed: both uninstalled, at T1, once
    t1, t2 = T0 + timedelta(minutes=30), T0 + timedelta(hours=1)
    counts = refresh_book(conn, profile, listed("locA", "Xy12AbCdEfGh34IjKl56", "LocW", uninstalled=("LocW",)),
                          exists, t1)
    assert (counts["newly_uninstalled"], counts["uninstalled"], counts["syncing"]) == (2, 2, 1)
    refresh_book(conn, profile, listed("locA", "Xy12AbCdEfGh34IjKl56"), exists, t2)
    book = {row.location_id: row for row in book_of(conn, "agency")}
    assert (book["LocA"].status, book["LocA"].uninstalled_at, book["LocA"].checked_at) == ("uninstalled", t1, t2)
    assert book["LocA"].last_seen_at == T0

    # reinstalled, its connection created meanwhile: back with the same key, syncing
    exists = {"gymdesk_LocA", "gymdesk_downtown", "gymdesk_LocW"}.__contains__
    counts = refresh_book(conn, profile, listed("LocA", "locA", "Xy12AbCdEfGh34IjKl56", "LocW"), exists, t2)
    assert (counts["new"], counts["reinstalled"], counts["syncing"], counts["uninstalled"]) == (0, 2, 3, 0)
    book = {row.location_id: row for row in book_of(conn, "agency")}
    assert (book["LocA"].key, book["LocA"].uninstalled_at, book["LocA"].first_seen_at) == ("loca", None, T0)
    assert book["LocW"].status == "syncing"


def test_a_key_given_is_kept_even_when_its_clash_is_gone(conn):
    profile = parse_profile(agency_profile_text(), "agency.yaml")
    refresh_book(conn, profile, listed("LocA", "locA"), lambda _: True, T0)
    refresh_book(conn, profile, listed("locA"), lambda _: True, T0)
    keys = {row.location_id: row.key for row in book_of(conn, "agency")}
    assert keys["locA"].startswith("loca_") and keys["LocA"] == "loca"


def test_the_discovery_dag_is_one_task_on_the_agencys_schedule():
    dag = build_discover_dag(parse_profile(agency_profile_text(), "agency.yaml"))
    assert dag.dag_id == "ghl_agency_discover" and [t.task_id for t in dag.tasks] == ["discover"]
    assert dag.timetable.serialize()["expression"] == "*/30 * * * *" and dag.max_active_runs == 1 and not dag.catchup
    with pytest.raises(ValueError, match="has no agency section"):
        build_discover_dag(parse_profile(agency_profile_text().split("\nagency:")[0], "plain.yaml"))


def test_a_location_the_listing_missed_is_uninstalled_only_when_ghl_confirms_it_one_ask_each(conn):
    profile = parse_profile(agency_profile_text(), "agency.yaml")
    refresh_book(conn, profile, listed("LocA", "LocB", "LocC", "LocD"), lambda _: True, T0)
    ghl_says = {"LocB": listed("LocB")[0], "LocC": listed("LocC", uninstalled=("LocC",))[0]}  # LocD: not listed
    asked: list[str] = []

    def confirm(location_id: str) -> InstalledLocation | None:
        asked.append(location_id)
        return ghl_says.get(location_id)

    kept = confirmed(listed("LocA"), {"LocA", "LocB", "LocC", "LocD"}, confirm)
    assert asked == ["LocB", "LocC", "LocD"]  # one ask per missing location, none for one listed
    counts = refresh_book(conn, profile, kept, lambda _: True, T0 + timedelta(minutes=30))
    book = {row.location_id: row.status for row in book_of(conn, "agency")}
    assert book == {"LocA": "syncing", "LocB": "syncing", "LocC": "uninstalled", "LocD": "uninstalled"}
    assert counts["newly_uninstalled"] == 2


def test_discovery_runs_retention_for_each_location_that_no_longer_syncs_with_its_own_profile(conn, tmp_path,
                                                                                              monkeypatch):
    """An uninstalled (or waiting) location has no DAG, so no report step: discovery deletes its aged raw
    records by its profile's retention_days; a syncing location's rows are left to its own runs."""
    import sqlalchemy as sa
    from crm_sync.pipeline.discover import retain_not_syncing
    from crm_sync.warehouse.tables import raw_record

    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path / "home"))
    profile = parse_profile(agency_profile_text(), "agency.yaml")
    exists = {"gymdesk_LocA", "gymdesk_LocG"}.__contains__
    refresh_book(conn, profile, listed("LocA", "LocW", "LocG"), exists, T0)
    refresh_book(conn, profile, listed("LocA", "LocW"), exists, T0)  # LocG uninstalled the app
    now = datetime.now(UTC)
    aged, fresh = now - timedelta(days=profile.retention_days + 1), now - timedelta(days=1)
    conn.execute(sa.insert(raw_record), [
        {"profile": f"agency__{key}", "run_id": f"r{n}", "side": "app", "entity": "contact", "record_key": "k",
         "payload": {"email": "p@example.com"}, "extracted_at": when}
        for key in ("loca", "locw", "locg") for n, when in enumerate((aged, fresh))])
    assert retain_not_syncing(conn, profile) == 2  # LocW (waiting), LocG (uninstalled)
    kept = sorted(conn.execute(sa.select(raw_record.c.profile, raw_record.c.run_id)).all())
    assert kept == [("agency__loca", "r0"), ("agency__loca", "r1"), ("agency__locg", "r1"), ("agency__locw", "r1")]

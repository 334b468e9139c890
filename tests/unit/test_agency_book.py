"""An agency profile becomes one profile per discovered location that syncs, read from the warehouse's book
(a SQLite warehouse filled here), or from the last snapshot when the warehouse cannot be read."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from crm_sync.locations import minute_of
from crm_sync.profile import ProfileError, agency_profiles, load_profiles, parse_profile, profile_by_name
from crm_sync.profile_agency import read_book, snapshot_path
from crm_sync.warehouse import db
from crm_sync.warehouse.db import create, migrate
from crm_sync.warehouse.tables import agency_location

from tests.fixtures import AGENCY_BLOCK, agency_profile_text

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def row(location_id: str, *, installed=True, ready=True, name=None, uninstalled_at=None, key=None) -> dict:
    return {"profile": "agency", "location_id": location_id, "key": key or location_id.lower(),
            "name": name or f"Gym {location_id}", "address": "1 Main St", "installed": installed,
            "installed_at": NOW, "first_seen_at": NOW, "last_seen_at": NOW, "uninstalled_at": uninstalled_at,
            "app_conn_id": f"gymdesk_{location_id}", "app_conn_ready": ready, "checked_at": NOW}


@pytest.fixture
def book(tmp_path, monkeypatch, request):
    """A migrated SQLite warehouse holding two syncing locations, one waiting and one uninstalled."""
    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'warehouse.db'}")
    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path / "home"))
    db.engine.cache_clear()  # a task's profile reads its location through the warehouse engine of this test
    request.addfinalizer(db.engine.cache_clear)
    engine = create(f"sqlite:///{tmp_path / 'warehouse.db'}")
    migrate(engine)
    rows = [row("LocB"), row("LocA", name="Downtown"), row("LocW", ready=False, name="Waits"),
            row("LocU", installed=False, name="Gone", uninstalled_at=datetime(2026, 11, 20, 8, tzinfo=UTC)),
            {**row("LocA"), "profile": "other_agency"}]
    with engine.begin() as conn:
        conn.execute(sa.insert(agency_location), rows)
    engine.dispose()
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "agency.yaml").write_text(agency_profile_text())
    return tmp_path


def test_the_book_is_the_profiles_rows_by_key_with_their_status(book):
    rows = read_book("agency")
    assert [(r.key, r.status) for r in rows] == [("loca", "syncing"), ("locb", "syncing"), ("locu", "uninstalled"),
                                                 ("locw", "waiting")]
    assert rows[2].uninstalled_at == datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert read_book("nobody") == []


def test_each_syncing_location_becomes_a_profile_on_the_agency_connection_pool_and_its_app_connection(book):
    first, second = load_profiles(book / "profiles")
    assert [p.name for p in (first, second)] == ["agency__loca", "agency__locb"]
    assert [p.dag_id for p in (first, second)] == ["ghl_agency_loca", "ghl_agency_locb"]
    assert {p.ghl.conn_id for p in (first, second)} == {"ghl_agency"}
    assert [p.ghl.location_id for p in (first, second)] == ["LocA", "LocB"]
    assert {p.ghl.pool_name for p in (first, second)} == {"crm_sync_ghl_agency"}
    assert [p.app.conn_id for p in (first, second)] == ["gymdesk_LocA", "gymdesk_LocB"]
    # each its own start minute, fixed by its key (another location discovered moves no one)
    assert [p.schedule for p in (first, second)] == [f"{minute_of('loca')} 0 * * *", f"{minute_of('locb')} 0 * * *"]
    assert first.schedule != second.schedule
    # a fast lane each, on the location's webhooks; the expanded profile is a plain one
    assert first.fast_dag_id == "ghl_agency_loca_fast" and first.ghl.asset == "crm_sync_ghl_location_LocA"
    assert first.agency is None and first.locations == []
    # a task finds its location's profile by the name its DAG carries
    assert profile_by_name("agency__locb", book / "profiles") == second


def test_a_waiting_an_uninstalled_and_an_unknown_location_say_why_they_do_not_sync(book):
    profiles = book / "profiles"
    with pytest.raises(ProfileError, match=r"location LocU \(Gone\) uninstalled the app on 2026-11-20: "
                                           "it no longer syncs"):
        profile_by_name("agency__locu", profiles)
    with pytest.raises(ProfileError, match=r"location LocW \(Waits\) is waiting for its app connection gymdesk_LocW"):
        profile_by_name("agency__locw", profiles)
    with pytest.raises(ProfileError, match="profile agency has no location 'nope'"):
        profile_by_name("agency__nope", profiles)
    # the agency profile itself (its discovery DAG) is found by its own name, and listed as an agency
    assert profile_by_name("agency", profiles).agency.conn_id == "ghl_agency"
    assert [p.name for p in agency_profiles(profiles)] == ["agency"]


def test_a_task_reads_its_one_location_row_not_the_book_nor_its_snapshot(book):
    """A task's profile (by name) costs one row of agency_location, whatever the book's size."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    db.engine()  # migrated: its statements are not the task's read
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        found = profile_by_name("agency__locb", book / "profiles")
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    assert (found.name, found.ghl.location_id) == ("agency__locb", "LocB")
    [read] = [statement for statement in seen if "agency_location" in statement]
    assert "WHERE agency_location.profile = ? AND agency_location.\"key\" = ?" in read
    assert not snapshot_path("agency").exists()  # the book was not read, so not rewritten


def test_agency_only_limits_the_locations_that_sync(book):
    (book / "profiles" / "agency.yaml").write_text(agency_profile_text().replace("  only: []", "  only: [LocB]"))
    assert [p.name for p in load_profiles(book / "profiles")] == ["agency__locb"]
    with pytest.raises(ProfileError, match=r"location LocA \(Downtown\) is not in agency.only"):
        profile_by_name("agency__loca", book / "profiles")


def test_an_unreadable_warehouse_falls_back_on_the_last_snapshot_and_logs_no_password(book, monkeypatch, caplog):
    assert [r.key for r in read_book("agency")] == ["loca", "locb", "locu", "locw"]  # writes the snapshot
    saved = json.loads(snapshot_path("agency").read_text())
    assert snapshot_path("agency") == book / "home" / "agency" / "agency.json" and len(saved) == 4
    # a directory is no SQLite file: the warehouse cannot be opened
    (book / "not-a-db").mkdir()
    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{book / 'not-a-db'}")
    with caplog.at_level(logging.WARNING, logger="crm_sync.profile_agency"):
        fallback = read_book("agency")
    assert [(r.key, r.status, r.uninstalled_at) for r in fallback] == [
        ("loca", "syncing", None), ("locb", "syncing", None),
        ("locu", "uninstalled", datetime(2026, 11, 20, 8, tzinfo=UTC)), ("locw", "waiting", None)]
    assert "agency profile agency: the warehouse cannot be read (OperationalError" in caplog.text
    assert [p.name for p in load_profiles(book / "profiles")] == ["agency__loca", "agency__locb"]
    # no snapshot either: an empty book, nothing fails
    snapshot_path("agency").unlink()
    assert read_book("agency") == [] and load_profiles(book / "profiles") == []


def test_the_warning_hides_the_warehouse_password():
    from crm_sync.profile_agency import _describe

    error = sa.exc.OperationalError("SELECT 1", {}, Exception("could not connect: password s3cret-pw rejected"))
    text = _describe(error, "postgresql+psycopg2://crm:s3cret-pw@db.example:5432/warehouse")
    assert text == "Exception: could not connect: password *** rejected" and "s3cret" not in text


def test_a_missing_table_is_an_empty_book_and_nothing_is_migrated_at_parse(tmp_path, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("CRM_SYNC_HOME", str(tmp_path / "home"))
    assert read_book("agency") == []
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    assert sa.inspect(engine).get_table_names() == []  # read only: no migration at parse
    engine.dispose()


def test_an_agency_excludes_listed_locations_and_a_fixed_ghl_location():
    text = agency_profile_text("locations:\n  - {key: north, conn_id: ghl_north}\n")
    with pytest.raises(ProfileError, match="key 'agency': an agency profile discovers its locations; remove "
                                           "'locations'"):
        parse_profile(text, "agency.yaml")
    text = agency_profile_text().replace("\nghl:\n  conn_id: ghl_default\n",
                                         "\nghl:\n  conn_id: ghl_default\n  location_id: loc1\n", 1)
    with pytest.raises(ProfileError, match=r"remove 'ghl.location_id'"):
        parse_profile(text, "agency.yaml")


def test_the_documented_agency_block_is_the_tested_one():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "profiles.md").read_text()
    assert AGENCY_BLOCK.read_text() in docs


def test_ghl_webhooks_route_to_a_syncing_location_and_follow_the_book(book):
    from crm_sync.webhooks.routing import profiles_for

    profiles = book / "profiles"
    assert profiles_for("LocA", profiles) == ("agency__loca",) and profiles_for("LocW", profiles) == ()
    engine = create(f"sqlite:///{book / 'warehouse.db'}")
    with engine.begin() as conn:  # a discovery finds a new location
        conn.execute(sa.insert(agency_location).values(**row("LocN")))
    engine.dispose()
    read_book("agency")  # the dag-processor's next parse rewrites the snapshot: the receiver re-reads
    assert profiles_for("LocN", profiles) == ("agency__locn",)


def test_a_warehouse_without_the_table_does_not_erase_a_discovered_book(book, monkeypatch, caplog):
    """Parsing reached another, empty warehouse (a wrong WAREHOUSE_URL where DAGs are parsed): the
    locations discovery wrote stay, and the warning says where to look, instead of every DAG vanishing."""
    assert len(read_book("agency")) == 4  # the snapshot of the real book
    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{book / 'fresh.db'}")
    with caplog.at_level(logging.WARNING, logger="crm_sync.profile_agency"):
        assert [r.key for r in read_book("agency")] == ["loca", "locb", "locu", "locw"]
    assert "has no agency_location table" in caplog.text


def test_parsing_never_fails_for_an_odd_snapshot_or_any_warehouse_error(book, monkeypatch, caplog):
    """A snapshot written by another version (a field unknown here) is still read; one that is no book at
    all is an empty book; an unexpected error reading the warehouse falls back on the snapshot."""
    import crm_sync.profile_agency as module

    assert len(read_book("agency")) == 4
    saved = json.loads(snapshot_path("agency").read_text())
    snapshot_path("agency").write_text(json.dumps([{**r, "added_later": 1} for r in saved]))

    def broken(url, profile):
        raise KeyError("an unexpected error")

    monkeypatch.setattr(module, "_read_warehouse", broken)
    with caplog.at_level(logging.WARNING, logger="crm_sync.profile_agency"):
        assert [r.key for r in read_book("agency")] == ["loca", "locb", "locu", "locw"]
        snapshot_path("agency").write_text(json.dumps([{"profile": "agency"}, 3]))
        assert read_book("agency") == [] and load_profiles(book / "profiles") == []
    assert "cannot be read (KeyError" in caplog.text and "snapshot" in caplog.text


def test_webhooks_follow_the_book_each_minute_even_where_no_snapshot_can_be_written(book, monkeypatch):
    """The receiver's CRM_SYNC_HOME cannot hold the snapshot (here: its folder is a file): with an agency
    profile, the routes are still re-read within a minute, so a newly discovered location routes."""
    from types import SimpleNamespace

    from crm_sync.webhooks import routing

    (book / "home").mkdir(exist_ok=True)
    (book / "home" / "agency").write_text("not a folder")
    profiles, now = book / "profiles", routing.time.time()
    assert routing.profiles_for("LocA", profiles) == ("agency__loca",)
    engine = create(f"sqlite:///{book / 'warehouse.db'}")
    with engine.begin() as conn:
        conn.execute(sa.insert(agency_location).values(**row("LocM")))
    engine.dispose()
    monkeypatch.setattr(routing, "time", SimpleNamespace(time=lambda: now + 61))
    assert routing.profiles_for("LocM", profiles) == ("agency__locm",)


@pytest.mark.parametrize("rule, says", [
    ("gymdesk_{location_id}}", "is not a naming rule"), ("gymdesk_{location_id", "is not a naming rule"),
    ("gymdesk_{id}", "names ['id']"), ("gymdesk_{}_{key}", "names ['']"),
    ("gymdesk_{key!r}", "names ['key!r']"), ("gymdesk_{key:>9}", "names ['key:>9']"),
    ("gymdesk_{location_id.x}", "names ['location_id.x']")])
def test_an_app_connection_rule_with_another_field_or_a_stray_brace_fails_at_load_naming_the_key(rule, says):
    text = agency_profile_text().replace("app_conn_id: gymdesk_{location_id}", f"app_conn_id: '{rule}'", 1)
    assert text != agency_profile_text()
    with pytest.raises(ProfileError, match=r"agency\.app_conn_id") as refused:
        parse_profile(text, "agency.yaml")
    assert says in str(refused.value)

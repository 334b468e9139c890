"""An agency's book, end to end: the discovery DAG run by Airflow against the GHL simulator's agency
install (100 locations, app connections for some), the DAG folder parsed from the book (one DAG and
fast lane per syncing location, none for one waiting or uninstalled), an uninstall and a reinstall
found by the next discovery, and one discovered location synced through its own location token."""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa

from harness.simulators import ghl
from harness.simulators.base import ServerThread, SimState
from tests.conftest import GYMDESK_KEY, Sim, run_dag
from tests.fixtures import agency_profile_text
from tests.helpers import GHL_FIELDS, GYMDESK_FIELDS, by_email
from tests.integration.test_dag_integrity import parse_dags

pytestmark = [pytest.mark.integration, pytest.mark.slow]
COMPANY, CLIENT_ID = "companyAgency00000001", "agencyapp-abc123"
LOCATIONS = [f"Loc{i:03d}" for i in range(100)]
WITH_APP_CONNECTION = [location for i, location in enumerate(LOCATIONS) if i % 3]  # 66; the other 34 wait


@pytest.fixture
def agency_sim():
    """The GHL simulator with one agency install on LOCATIONS; yields (url, the install's answer)."""
    sim = ghl.GHLSimulator({}, SimState(), access_token_ttl_s=3600)
    with ServerThread(ghl.create_app(sim)) as server:
        install = httpx.post(server.url + "/_sim/agency", timeout=10, json={
            "client_id": CLIENT_ID, "company_id": COMPANY,
            "locations": [{"id": i, "name": f"Gym {i}", "address": f"{n} Main St", "installed": True}
                          for n, i in enumerate(LOCATIONS)]})
        install.raise_for_status()
        yield server.url, install.json()


def agency_env(tmp_path, ghl_url: str, install: dict, app_url: str = "http://127.0.0.1:9") -> dict[str, str]:
    """The agency connection, an app connection for each of WITH_APP_CONNECTION (naming rule
    gymdesk_{location_id}), the agency profile alone in its folder, a SQLite warehouse."""
    profiles = tmp_path / "profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "agency.yaml").write_text(agency_profile_text())
    env = {"AIRFLOW_CONN_GHL_AGENCY": json.dumps({"conn_type": "ghl", "host": ghl_url, "extra": {
               "company_id": COMPANY, "client_id": install["client_id"], "client_secret": install["client_secret"],
               "refresh_token": install["refresh_token"], "app_id": install["app_id"]}}),
           "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}", "CRM_SYNC_HOME": str(tmp_path / "home"),
           "CRM_SYNC_PROFILES_DIR": str(profiles)}
    app = json.dumps({"conn_type": "crm_sync_app", "host": app_url, "password": GYMDESK_KEY})
    env.update({f"AIRFLOW_CONN_GYMDESK_{location.upper()}": app for location in WITH_APP_CONNECTION})
    return env


def book(env: dict[str, str]) -> dict[str, tuple]:
    engine = sa.create_engine(env["WAREHOUSE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT location_id, key, installed, app_conn_ready, uninstalled_at, app_conn_id "
                                    "FROM agency_location WHERE profile = 'agency'")).all()
    engine.dispose()
    return {row[0]: tuple(row[1:]) for row in rows}


def parsed_dags(tmp_path, env: dict[str, str]) -> dict:
    """The DAG folder parsed as the dag-processor parses it: no network, no connection lookup; the
    warehouse read for the book. Per DAG: its pools (but Airflow's default) and what schedules it."""
    parsed = parse_dags(tmp_path / "parse-home", describe='[sorted({t.pool for t in dag.tasks} - {"default_pool"}), '
                        'type(dag.timetable).__name__]', env=env, book=True)
    assert parsed["errors"] == {} and parsed["touched"] == []
    return parsed["dags"]


def test_discovery_books_100_locations_one_dag_each_that_syncs_and_follows_uninstall_and_reinstall(
        airflow_home, tmp_path, agency_sim):
    url, install = agency_sim
    env = agency_env(tmp_path, url, install)
    assert parsed_dags(tmp_path, env) == {"ghl_agency_discover": [[], "CronTriggerTimetable"]}  # no book yet

    run_dag(airflow_home, "ghl_agency_discover", env)

    rows = book(env)
    assert len(rows) == 100 and all(row[1] for row in rows.values())  # every one installed
    assert {i for i, row in rows.items() if row[2]} == set(WITH_APP_CONNECTION)  # 66 ready, 34 waiting
    assert rows["Loc001"][0] == "loc001" and rows["Loc001"][4] == "gymdesk_Loc001"
    dags = parsed_dags(tmp_path, env)
    syncing = {f"ghl_agency_{i.lower()}" for i in WITH_APP_CONNECTION}
    assert set(dags) == {"ghl_agency_discover"} | syncing | {f"{dag_id}_fast" for dag_id in syncing}
    assert dags["ghl_agency_loc001"] == [["crm_sync_ghl_agency"], "CronDataIntervalTimetable"]
    assert dags["ghl_agency_loc001_fast"] == [["crm_sync_ghl_agency"], "AssetTriggeredTimetable"]
    assert "ghl_agency_loc000" not in dags  # waiting for gymdesk_Loc000

    # Loc001 uninstalls the app: the next discovery marks it, and its DAGs are gone at the next parse.
    httpx.patch(f"{url}/_sim/agency/locations/Loc001", json={"installed": False}).raise_for_status()
    run_dag(airflow_home, "ghl_agency_discover", env)
    key, installed, ready, uninstalled_at, _ = book(env)["Loc001"]
    assert (key, bool(installed), uninstalled_at is not None) == ("loc001", False, True)
    dags = parsed_dags(tmp_path, env)
    assert "ghl_agency_loc001" not in dags and "ghl_agency_loc001_fast" not in dags and "ghl_agency_loc002" in dags

    # Reinstalled: back with the same key, so the same DAG.
    httpx.patch(f"{url}/_sim/agency/locations/Loc001", json={"installed": True}).raise_for_status()
    run_dag(airflow_home, "ghl_agency_discover", env)
    assert book(env)["Loc001"][:4] == ("loc001", 1, 1, None)
    assert "ghl_agency_loc001" in parsed_dags(tmp_path, env)


def test_a_discovered_location_syncs_end_to_end_through_its_own_location_token_minted_once(
        airflow_home, tmp_path, agency_sim, gymdesk_sim, demo_data):
    url, install = agency_sim
    ghl_sim = Sim(url)
    ghl_seed, desk_seed = demo_data.seeds()
    ghl_sim.seed("contacts", [{**contact, "locationId": "Loc001"} for contact in ghl_seed["contacts"]])
    gymdesk_sim.seed("members", desk_seed["members"])
    env = agency_env(tmp_path, url, install, app_url=gymdesk_sim.url)
    run_dag(airflow_home, "ghl_agency_discover", env)

    run_dag(airflow_home, "ghl_agency_loc001", env)

    ghl_people = by_email([c for c in ghl_sim.records("contacts") if c["locationId"] == "Loc001"], GHL_FIELDS)
    desk_people = by_email(gymdesk_sim.records("members"), GYMDESK_FIELDS)
    for person in demo_data.expected:  # the merged result of the single-location sync, in the agency's location
        assert ghl_people.get(person["email"]) == [person], f"GHL holds the wrong record for {person['email']}"
        assert desk_people.get(person["email"]) == [person], f"Gymdesk holds the wrong record for {person['email']}"
    assert all(c["locationId"] == "Loc001" for c in ghl_sim.records("contacts"))  # no other location touched
    engine = sa.create_engine(env["WAREHOUSE_URL"])
    with engine.connect() as conn:
        profiles = {row[0] for row in conn.execute(sa.text("SELECT DISTINCT profile FROM run_log"))}
        tokens = {row[0] for row in conn.execute(sa.text("SELECT key FROM oauth_token"))}
    engine.dispose()
    assert profiles == {"agency__loc001"}
    assert "ghl_location__ghl_agency__Loc001" in tokens  # the location's token, shared through the store
    # Every task of the run, and a second run, used the one location token minted for Loc001.
    run_dag(airflow_home, "ghl_agency_loc001", env)
    assert httpx.get(f"{url}/_sim/agency/mints").json() == {"Loc001": 1}


def test_the_pools_command_creates_the_agencys_pool_with_its_slots(airflow_home, tmp_path):
    import subprocess
    import sys

    from tests.conftest import airflow_env

    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "agency.yaml").write_text(agency_profile_text().replace("pool_slots: 16", "pool_slots: 12"))
    env = airflow_env(airflow_home, CRM_SYNC_PROFILES_DIR=str(profiles), CRM_SYNC_HOME=str(tmp_path / "home"),
                      WAREHOUSE_URL=f"sqlite:///{tmp_path / 'warehouse.db'}")

    def cli(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=300,
                              check=True).stdout

    assert "created pools: crm_sync_ghl_agency" in cli("crm_sync.cli", "pools")
    pools = {p["pool"]: p for p in json.loads(cli("airflow", "pools", "list", "--output", "json"))}
    assert int(pools["crm_sync_ghl_agency"]["slots"]) == 12

"""Every DAG file imports cleanly in an Airflow process of its own, with no network, connection or warehouse
access at parse time; the pools command on a real Airflow home. The DAGs' shape is tests/unit/test_dag_shape.py."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from crm_sync.profile import load_profiles

from tests.conftest import ROOT, airflow_env

PARSE_IN_A_SEALED_PROCESS = textwrap.dedent("""
    import json, socket
    import httpx, sqlalchemy
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook

    touched = []
    def forbid(what):
        def refuse(*args, **kwargs):
            touched.append(what)
            raise RuntimeError(what + " at DAG parse time")
        return refuse

    socket.socket.connect = forbid("network")
    socket.create_connection = forbid("network")
    httpx.Client.send = forbid("http")
    BaseHook.get_connection = classmethod(forbid("connection lookup"))
    import crm_sync.warehouse.db as warehouse
    warehouse.create = forbid("warehouse")

    bag = DagBag(dag_folder="DAGS_FOLDER", safe_mode=False)
    print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "touched": touched,
                      "dags": {d: sorted(t.task_id for t in dag.tasks) for d, dag in bag.dags.items()}}))
""")


def parse_dags(home, profiles=None, describe: str | None = None, env: dict[str, str] | None = None,
               book: bool = False) -> dict:
    """The DagBag of dags/ parsed in a sealed process: import errors, what parsing touched, and per DAG
    its task ids, or ``describe`` (a Python expression of ``dag``). ``env``: more environment;
    ``book``: the warehouse may be read (an agency profile's book, ``profile_agency.read_book``)."""
    env = {**airflow_env(home, **(env or {})), **({"CRM_SYNC_PROFILES_DIR": str(profiles)} if profiles else {})}
    script = PARSE_IN_A_SEALED_PROCESS.replace("DAGS_FOLDER", str(ROOT / "dags"))
    if book:
        script = script.replace('warehouse.create = forbid("warehouse")', "")
    if describe:
        script = script.replace("sorted(t.task_id for t in dag.tasks) for d, dag", f"{describe} for d, dag")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_dag_file_imports_without_touching_network_connections_or_the_warehouse(tmp_path):
    parsed = parse_dags(tmp_path)
    assert parsed["errors"] == {}
    assert parsed["touched"] == []
    profiles = load_profiles()
    assert sorted(parsed["dags"]) == sorted([p.dag_id for p in profiles] + [p.fast_dag_id for p in profiles
                                                                              if p.fast_dag_id])
    for profile in profiles:
        assert parsed["dags"][profile.dag_id] == sorted([
            "migrate_warehouse", "extract_ghl", f"extract_{profile.name}", "stage", "validate", "reconcile",
            "load", "report"])
        if profile.fast_dag_id:
            assert parsed["dags"][profile.fast_dag_id] == ["sync"]


def test_a_profile_with_a_ghl_location_parses_into_its_batch_dag_on_cron_and_a_fast_lane_on_the_asset(tmp_path):
    from crm_sync.paths import PROFILES_DIR

    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (PROFILES_DIR / "gymdesk.yaml").read_text()
    (profiles / "gymdesk.yaml").write_text(text.replace("\nghl:\n  conn_id: ghl_default\n",
                                                        "\nghl:\n  conn_id: ghl_default\n  location_id: loc1\n", 1))
    parsed = parse_dags(tmp_path / "home", profiles, "[sorted(t.task_id for t in dag.tasks), "
                        "sorted({t.pool for t in dag.tasks}), type(dag.timetable).__name__, dag.max_active_runs]")
    assert parsed["errors"] == {} and parsed["touched"] == []
    assert parsed["dags"]["ghl_gymdesk_fast"] == [["sync"], ["crm_sync_ghl_default"], "AssetTriggeredTimetable", 1]
    assert parsed["dags"]["ghl_gymdesk"][2] == "CronDataIntervalTimetable"  # one event wakes one DAG


def test_an_invalid_profile_is_an_import_error_and_the_other_profiles_still_load(tmp_path):
    import shutil

    from crm_sync.paths import PROFILES_DIR

    profiles = tmp_path / "profiles"
    shutil.copytree(PROFILES_DIR, profiles)
    broken = (profiles / "gist.yaml").read_text().replace("direction: both", "direction: sideways", 1)
    (profiles / "gist.yaml").write_text(broken)
    parsed = parse_dags(tmp_path / "home", profiles)
    assert "ghl_gist" not in parsed["dags"] and "ghl_gymdesk" in parsed["dags"] and "ghl_gymflow" in parsed["dags"]
    [(path, error)] = parsed["errors"].items()
    assert path.endswith("crm_sync_profile_errors.py")
    assert "gist.yaml" in error and "entities.contact.direction" in error and "sideways" in error


def test_the_pools_command_creates_each_locations_pool_once_and_keeps_a_users_size(airflow_home):
    def cli(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", *args], env=airflow_env(airflow_home), capture_output=True,
                              text=True, timeout=300, check=True).stdout

    assert "created pools: crm_sync_ghl_default" in cli("crm_sync.cli", "pools")
    cli("airflow", "pools", "set", "crm_sync_ghl_default", "3", "resized by the user")
    assert "every GHL location's pool exists" in cli("crm_sync.cli", "pools")
    pools = {p["pool"]: p for p in json.loads(cli("airflow", "pools", "list", "--output", "json"))}
    assert int(pools["crm_sync_ghl_default"]["slots"]) == 3


def test_the_pools_command_resizes_an_agency_pool_to_its_pool_slots(airflow_home, tmp_path):
    from tests.fixtures import agency_profile_text

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "agency.yaml").write_text(agency_profile_text("", "agency", "ghl_agency_pools")
                                                         .replace("pool_slots: 16 ", "pool_slots: 5 "))
    env = airflow_env(airflow_home, CRM_SYNC_PROFILES_DIR=str(tmp_path / "profiles"),
                      CRM_SYNC_HOME=str(tmp_path / "home"))

    def cli(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=300,
                              check=True).stdout

    cli("airflow", "pools", "set", "crm_sync_ghl_agency", "2", "an older pool_slots")
    assert "crm_sync_ghl_agency (resized from 2 to 5 slots)" in cli("crm_sync.cli", "pools")
    pools = {p["pool"]: p for p in json.loads(cli("airflow", "pools", "list", "--output", "json"))}
    assert int(pools["crm_sync_ghl_agency"]["slots"]) == 5
    assert "every GHL location's pool exists" in cli("crm_sync.cli", "pools")  # the same size: left alone


def test_fifty_locations_of_one_profile_parse_into_fifty_dags_with_their_own_pools_and_start_minutes(tmp_path):
    import shutil

    from crm_sync.paths import PROFILES_DIR

    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shutil.copy(PROFILES_DIR / "gymflow.yaml", profiles)
    locations = "".join(f"  - {{key: loc{n:02d}, conn_id: ghl_loc{n:02d}}}\n" for n in range(50))
    (profiles / "gymdesk.yaml").write_text((PROFILES_DIR / "gymdesk.yaml").read_text() + "\nlocations:\n" + locations)
    # The DagBag enforces Airflow's own parse bound ([core] dagbag_import_timeout): a file over it is an import error.
    parsed = parse_dags(tmp_path / "home", profiles, '[sorted({t.pool for t in dag.tasks} - {"default_pool"}), '
                                                     'getattr(dag.timetable, "summary", None)]')
    assert parsed["errors"] == {} and parsed["touched"] == []
    desk = {dag_id: spec for dag_id, spec in parsed["dags"].items()
            if dag_id.startswith("ghl_gymdesk_loc") and not dag_id.endswith("_fast")}
    assert len(desk) == 50 and "ghl_gymflow" in parsed["dags"] and "ghl_gymdesk" not in parsed["dags"]
    assert sorted(pools[0] for pools, _ in desk.values()) == [f"crm_sync_ghl_loc{n:02d}" for n in range(50)]
    assert len({summary for _, summary in desk.values()}) == 50  # each location starts at its own minute
    # Gymdesk pushes its changes (app.webhooks): each location's fast lane, in that location's pool.
    fast = {dag_id: pools for dag_id, (pools, _) in parsed["dags"].items() if dag_id.endswith("_fast")}
    assert {dag_id: pools for dag_id, pools in fast.items() if dag_id.startswith("ghl_gymdesk_loc")} == {
        f"ghl_gymdesk_loc{n:02d}_fast": [f"crm_sync_ghl_loc{n:02d}"] for n in range(50)}

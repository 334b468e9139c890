"""Four profiles on two GHL locations at once, through the CeleryExecutor on this machine's services.

Two profile files (gymdesk, gymflow), each naming locations a and b: four DAGs, triggered
together, run by two Celery workers. Each app starts empty and must end holding exactly its
location's GHL contacts (the locations never mix), no location is ever answered 429, and the
run reports are read from the console in the api-server (the warehouse), not from a worker's disk.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from contextlib import ExitStack
from urllib.parse import quote

import httpx
import pytest

from harness.airflow_runner import airflow, airflow_services, prepare_metadata
from harness.celery_stack import celery_services_env, location_connections, write_location_profiles
from harness.simulators import ghl, gymdesk, gymflow
from harness.simulators.base import ServerThread, SimState
from tests.conftest import APP_KEY, airflow_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # one Celery stack, four concurrent runs
LOCATIONS = {"a": "locAlpha000000000001", "b": "locBravo000000000001"}
PAST = "2026-11-01T09:00:00Z"
APPS = {"gymdesk": gymdesk.create_app, "gymflow": gymflow.create_app}


def ghl_contacts(key: str, count: int = 20) -> list[dict]:
    return [{"id": f"g{key}{n:018d}", "locationId": LOCATIONS[key], "email": f"{key}.person{n}@example.com",
             "firstName": f"P{n}", "lastName": key.upper(), "tags": [], "dateAdded": PAST, "dateUpdated": PAST}
            for n in range(count)]


def app_emails(url: str, name: str) -> set[str]:
    collection = "members" if name == "gymdesk" else "contacts"
    return {r["email"] for r in httpx.get(f"{url}/_sim/records/{collection}", timeout=10).json()}


def test_four_profiles_on_two_locations_converge_through_two_celery_workers_without_a_429(tmp_path):
    profiles = tmp_path / "profiles"
    write_location_profiles(profiles, list(APPS), list(LOCATIONS))
    tokens = {f"pit-{key}": {"location_id": location, "scopes": list(ghl.SCOPES)} for key, location in LOCATIONS.items()}
    with ExitStack() as stack:
        ghl_server = stack.enter_context(ServerThread(ghl.create_app(ghl.GHLSimulator(tokens, SimState()))))
        httpx.post(f"{ghl_server.url}/_sim/seed", json={"contacts": ghl_contacts("a") + ghl_contacts("b")},
                   timeout=10).raise_for_status()
        apps = {(name, key): stack.enter_context(ServerThread(create(APP_KEY, SimState()))).url
                for name, create in APPS.items() for key in LOCATIONS}
        env = airflow_env(tmp_path / "airflow")
        env.update(stack.enter_context(celery_services_env()))
        env.update({"CRM_SYNC_PROFILES_DIR": str(profiles), "CRM_SYNC_HOME": str(tmp_path / "home"),
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"})
        env.update(location_connections(ghl_server.url, {k: (f"pit-{k}", loc) for k, loc in LOCATIONS.items()}, apps,
                                        APP_KEY))
        prepare_metadata(env, tmp_path / "logs")  # with the pools crm_sync_ghl_a and crm_sync_ghl_b
        dag_ids = [f"ghl_{name}_{key}" for name in APPS for key in LOCATIONS]
        with airflow_services(env, tmp_path / "logs", timeout=300) as services:
            for dag_id in dag_ids:  # no DAG is unpaused at creation
                airflow(["dags", "unpause", dag_id], services.env, services.log_dir / f"unpause-{dag_id}.log")
            triggers = [subprocess.Popen(["airflow", "dags", "trigger", dag_id], env=services.env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for dag_id in dag_ids]
            assert [t.wait(timeout=300) for t in triggers] == [0] * 4
            runs = services.wait_for_runs("run_type = ?", ("manual",), time.monotonic() + 900)
            base = f"http://127.0.0.1:{services.env['AIRFLOW__API__PORT']}"
            api, console = (httpx.Client(base_url=base + path, timeout=30) for path in ("/api/v2", "/crm-sync/api"))
            reports = {}
            for dag_id in dag_ids:  # the console's report of each run, as the UI shows it
                [run] = api.get(f"/dags/{dag_id}/dagRuns").json()["dag_runs"]
                answer = console.get(f"/dags/{dag_id}/runs/{quote(run['dag_run_id'], safe='')}")
                assert answer.status_code == 200, answer.text
                reports[dag_id] = answer.json()
        calls = httpx.get(f"{ghl_server.url}/_sim/calls", timeout=10).json()
        final = {(name, key): app_emails(url, name) for (name, key), url in apps.items()}

    assert sorted(r["state"] for r in runs) == ["success"] * 4, runs
    ran = [(tmp_path / "logs" / f"celery-worker-{n}.log").read_text().count("final_state=success") for n in (1, 2)]
    assert all(ran) and sum(ran) == 4 * 8, ran  # every task in a Celery worker, both workers busy
    assert {k: v for k, v in calls.items() if k.startswith("429")} == {}
    for (name, key), emails in final.items():  # converged: the app holds its location's contacts, only those
        assert emails == {c["email"] for c in ghl_contacts(key)}, (name, key)
    for dag_id, report in reports.items():  # the console (the warehouse, not a worker's disk) says the same
        assert report["sides"]["app"]["created"] == 20 and report["sides"]["ghl"]["extracted"] == 20, dag_id
    shutil.rmtree(tmp_path / "home")  # nothing above read the workers' report files

"""Scale-out bench: two GHL locations through two Celery workers against one location alone.

One CeleryExecutor stack (harness/celery_stack.py: PostgreSQL metadata and warehouse, Redis,
api-server, scheduler, dag-processor, two workers) syncs the gymdesk profile on three locations
with the same data each (GHL contacts to Gymdesk, Gymdesk members to GHL, every location under
GHL's real 100 calls / 10 s limit). First location a runs alone (the baseline), then b and c run
at once. Throughput per phase, through the DAGs' real code path: records extracted per second
of the extract tasks' span, and writes sent per second of the load tasks' span (start of the
first to end of the last, from the api-server's task instances). Prints the ratios as JSON.

    PYTHONPATH=plugins:. .venv/bin/python bench/celery_locations.py [--records 150]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from harness.airflow_runner import Services, airflow, airflow_services, prepare_metadata  # noqa: E402
from harness.celery_stack import celery_services_env, location_connections, write_location_profiles  # noqa: E402
from harness.demo import demo_env  # noqa: E402
from harness.simulators import ghl, gymdesk  # noqa: E402
from harness.simulators.base import ServerThread, SimState  # noqa: E402

KEYS = ("a", "b", "c")
API_KEY = "bench-key"
PAST = "2026-11-01T09:00:00Z"


def seeds(key: str, location: str, count: int) -> tuple[list[dict], list[dict]]:
    contacts = [{"id": f"g{key}{n:018d}", "locationId": location, "email": f"ghl.{key}{n}@example.com",
                 "firstName": f"G{n}", "lastName": key.upper(), "tags": [], "dateAdded": PAST, "dateUpdated": PAST}
                for n in range(count)]
    members = [{"id": f"mem_{key}{n}", "email": f"desk.{key}{n}@example.com", "first_name": f"D{n}",
                "last_name": key.upper(), "phone": None, "status": "active", "created_at": PAST, "updated_at": PAST}
               for n in range(count)]
    return contacts, members


def run_phase(services: Services, api: httpx.Client, keys: list[str]) -> dict[str, float]:
    """Trigger the DAGs of ``keys`` together; their extracted-records and sent-writes rates."""
    dag_ids = [f"ghl_gymdesk_{key}" for key in keys]
    for dag_id in dag_ids:  # no DAG is unpaused at creation
        airflow(["dags", "unpause", dag_id], services.env, services.log_dir / f"unpause-{dag_id}.log")
    triggers = [subprocess.Popen(["airflow", "dags", "trigger", dag_id], env=services.env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for dag_id in dag_ids]
    if any(t.wait(timeout=300) for t in triggers):
        raise RuntimeError("airflow dags trigger failed")
    marks = ",".join("?" * len(dag_ids))
    runs = services.wait_for_runs(f"run_type = 'manual' AND dag_id IN ({marks})", tuple(dag_ids),
                                  time.monotonic() + 1800)
    if any(r["state"] != "success" for r in runs):
        raise RuntimeError(f"runs failed: {runs}")
    spans: dict[str, list[datetime]] = {"extract": [], "load": []}
    extracted = written = 0
    for dag_id in dag_ids:
        [run] = api.get(f"/dags/{dag_id}/dagRuns").json()["dag_runs"]
        base = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances"
        for ti in api.get(base).json()["task_instances"]:
            step = ti["task_id"].split("_")[0]
            if step in spans:
                spans[step] += [datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"])]
        report = api.get(f"{base}/report/xcomEntries/return_value").json()["value"]
        report = json.loads(report) if isinstance(report, str) else report
        extracted += sum(side["extracted"] for side in report["sides"].values())
        written += report["writes_sent"]
    seconds = {step: (max(s) - min(s)).total_seconds() for step, s in spans.items()}
    return {"extracted": extracted, "writes": written, "read_per_s": extracted / seconds["extract"],
            "write_per_s": written / seconds["load"], "extract_s": seconds["extract"], "load_s": seconds["load"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=150, help="GHL contacts and Gymdesk members per location")
    args = parser.parse_args()
    locations = {key: f"locBench{key.upper()}{'0' * 11}" for key in KEYS}
    tokens = {key: (f"pit-bench-{key}", location) for key, location in locations.items()}
    grants = {token: {"location_id": location, "scopes": list(ghl.SCOPES)} for token, location in tokens.values()}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        home = Path(tmp)
        ghl_url = stack.enter_context(ServerThread(ghl.create_app(ghl.GHLSimulator(grants, SimState())))).url
        apps = {}
        for key in KEYS:
            contacts, members = seeds(key, locations[key], args.records)
            httpx.post(f"{ghl_url}/_sim/seed", json={"contacts": contacts}, timeout=30).raise_for_status()
            apps[("gymdesk", key)] = stack.enter_context(ServerThread(gymdesk.create_app(API_KEY, SimState()))).url
            httpx.post(f"{apps[('gymdesk', key)]}/_sim/seed", json={"members": members}, timeout=30).raise_for_status()
        write_location_profiles(home / "profiles", ["gymdesk"], list(KEYS))
        env = demo_env(home, ghl_url, {})  # the demo's Airflow environment, under this run's home
        env.update(stack.enter_context(celery_services_env()))
        env.update(location_connections(ghl_url, tokens, apps, API_KEY))
        env.update({"CRM_SYNC_PROFILES_DIR": str(home / "profiles"),
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"})
        prepare_metadata(env, home / "logs")
        with airflow_services(env, home / "logs", timeout=300) as services:
            api = httpx.Client(base_url=f"http://127.0.0.1:{services.env['AIRFLOW__API__PORT']}/api/v2", timeout=30)
            one = run_phase(services, api, ["a"])
            two = run_phase(services, api, ["b", "c"])
        calls = httpx.get(f"{ghl_url}/_sim/calls", timeout=10).json()
    result = {"records_per_location": args.records, "one_location": one, "two_locations": two,
              "write_ratio": round(two["write_per_s"] / one["write_per_s"], 2),
              "read_ratio": round(two["read_per_s"] / one["read_per_s"], 2),
              "rate_limited_429": sum(v for k, v in calls.items() if k.startswith("429")),
              "seconds": round(time.monotonic() - started)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Agency bench: an agency's whole book (100 locations) through the CeleryExecutor on this machine, in
both DAG shapes, and what one location costs.

Each shape gets a fresh stack (harness/celery_stack.py: PostgreSQL metadata and warehouse, Redis,
api-server, scheduler, dag-processor, two Celery workers) and fresh simulators: the GHL simulator with
every location (each under GHL's own per-location rate limit and daily budget) and one app server
holding a Gymdesk account per location (harness/simulators/tenants.py), each seeded with ``--people``
GHL contacts and as many Gymdesk members, so each run creates them on the other side. The locations'
DAGs come from one profile (``locations:``, one connection per location and app connections by the
naming rule gymdesk_<key>, as AIRFLOW_CONN_ variables). Once the dag-processor has parsed every DAG,
all are unpaused and triggered at once through the REST API, and the bench waits for every run.

It prints ONE JSON line: the issue's figures (``locations``, ``discovered``, ``runs_ok``,
``runs_failed``, ``location_tokens_minted``, ``dag_parse_seconds``, ``schedule_delay_p95_s``,
``total_calls``, ``rate_limited_429``, ``wall_s``; summed over both shapes, or the worse shape's for
the parse time and the delay), and per shape (``shapes.steps``, ``shapes.single_task``) what
docs/capacity.md needs: CPU seconds of each Airflow service and of the simulators, task seconds,
GHL and app calls, warehouse rows and bytes, metadata bytes and task-log bytes, per run and per task
run. Bounded (``--timeout`` per shape), stops everything it started, localhost only.

    PYTHONPATH=plugins:. .venv/bin/python bench/agency.py [--locations 100] [--people 20]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from bench.celery_locations import API_KEY, seeds  # noqa: E402
from harness.airflow_runner import Services, airflow_services, prepare_metadata  # noqa: E402
from harness.celery_stack import (  # noqa: E402
    celery_services_env,
    location_connections,
    session_cpu_seconds,
    write_location_profiles,
)
from harness.demo import demo_env  # noqa: E402
from harness.simulators import ghl, gymdesk, tenants  # noqa: E402
from harness.simulators.base import ServerThread, SimState  # noqa: E402

SHAPES = ("steps", "single_task")
DAG_PREFIX = "ghl_gymdesk_"
ROLES = ("api-server", "scheduler", "dag-processor", "celery-workers")


def locations(count: int) -> dict[str, str]:
    """Location key -> GHL location id (20 characters, as GHL's)."""
    return {f"l{n:03d}": f"locAgency{n:011d}" for n in range(count)}


def cpu(services: Services) -> dict[str, float]:
    """CPU seconds so far of each Airflow service (its whole session), and of this process (the simulators)."""
    found = dict.fromkeys(ROLES, 0.0)
    for process in services.processes:
        role = "celery-workers" if process.args[1] == "celery" else process.args[1]
        found[role] += session_cpu_seconds(process.pid)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {**found, "simulators": usage.ru_utime + usage.ru_stime}


def warehouse_size(url: str) -> tuple[int, int]:
    """Rows and bytes (tables, indexes, TOAST) of every warehouse table."""
    import sqlalchemy as sa

    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.connect() as conn:
        tables = conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
        rows = sum(conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables)
        size = sum(conn.execute(sa.text(f"SELECT pg_total_relation_size('\"{t}\"')")).scalar_one() for t in tables)
    return rows, size


def log_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in (home / "logs").rglob("*") if p.is_file()) if (home / "logs").exists() else 0


def wait_for_dags(services: Services, count: int, deadline: float) -> float:
    """Seconds until the dag-processor has parsed ``count`` location DAGs."""
    started = time.monotonic()
    while services.query("SELECT count(*) FROM dag WHERE dag_id LIKE ? AND NOT is_stale",
                         DAG_PREFIX + "%")[0][0] < count:
        services.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the dag-processor did not parse {count} DAGs in time; logs in {services.log_dir}")
        time.sleep(1)
    return round(time.monotonic() - started, 1)


def dag_parse_seconds(services: Services) -> float:
    """How long parsing the DAG folder takes (every location's DAG): ``airflow dags report``'s own figure."""
    out = subprocess.run(["airflow", "dags", "report", "-o", "json"], env=services.env, capture_output=True,
                         text=True, timeout=600, check=True).stdout
    rows = json.loads(out[re.search(r"^\[\s*\{", out, re.M).start():])  # after any warning lines
    seconds = 0.0
    for row in rows:  # "0:00:01.234567"
        for unit, value in zip((3600, 60, 1), str(row["duration"]).split(":"), strict=True):
            seconds += unit * float(value)
    return round(seconds, 2)


def p(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(share * 100) - 1], 2) \
        if len(values) > 1 else round(values[0], 2)


def run_figures(services: Services) -> dict:
    """Runs and task instances of the location DAGs, from Airflow's metadata database."""
    runs = services.query("SELECT dag_id, run_id, state, run_after, start_date, end_date FROM dag_run "
                          "WHERE run_type = 'manual' AND dag_id LIKE ?", DAG_PREFIX + "%")
    tis = services.query("SELECT dag_id, run_id, task_id, queued_dttm, start_date, end_date, duration, try_number "
                         "FROM task_instance WHERE dag_id LIKE ?", DAG_PREFIX + "%")
    first_start: dict[tuple, object] = {}
    for dag_id, run_id, _task, _queued, start, *_ in tis:
        if start is not None and ((dag_id, run_id) not in first_start or start < first_start[(dag_id, run_id)]):
            first_start[(dag_id, run_id)] = start
    delays = [(first_start[(d, r)] - due).total_seconds() for d, r, _s, due, *_ in runs if (d, r) in first_start]
    walls = [(end - start).total_seconds() for *_, start, end in runs if start and end]
    waits = [(start - queued).total_seconds() for *_, queued, start, _e, _d, _t in tis if queued and start]
    durations = [float(duration or 0) for *_, duration, _t in tis]
    return {"runs_ok": sum(r[2] == "success" for r in runs), "runs_failed": sum(r[2] != "success" for r in runs),
            "task_runs": len(tis), "task_tries": sum(int(t[-1] or 1) for t in tis),
            "schedule_delay_p50_s": p(delays, 0.5), "schedule_delay_p95_s": p(delays, 0.95),
            "run_wall_p50_s": p(walls, 0.5), "run_wall_p95_s": p(walls, 0.95),
            "task_queue_wait_p50_s": p(waits, 0.5), "task_queue_wait_p95_s": p(waits, 0.95),
            "task_seconds": round(sum(durations), 1)}


def trigger_all(api: httpx.Client, dag_ids: list[str]) -> None:
    """Unpause every DAG and trigger one run of each, at once, through the REST API."""
    for dag_id in dag_ids:
        api.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    for dag_id in dag_ids:
        api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None}).raise_for_status()


def seed(ghl_url: str, apps_url: str, keyed: dict[str, str], people: int) -> None:
    contacts = []
    for key, location in keyed.items():
        found, members = seeds(key, location, people)
        contacts += found
        httpx.post(f"{apps_url}{tenants.tenant_path(key)}/_sim/seed", json={"members": members},
                   timeout=30).raise_for_status()
    httpx.post(f"{ghl_url}/_sim/seed", json={"contacts": contacts}, timeout=60).raise_for_status()


def shape_phase(shape: str, keyed: dict[str, str], args: argparse.Namespace) -> dict:
    """One shape on a fresh stack and fresh simulators: every location's DAG parsed, triggered, finished."""
    from crm_sync.warehouse.db import create, migrate

    started = time.monotonic()
    deadline = started + args.timeout
    tokens = {key: (f"pit-{key}", location) for key, location in keyed.items()}
    grants = {token: {"location_id": location, "scopes": list(ghl.SCOPES)} for token, location in tokens.values()}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        home = Path(tmp)
        ghl_url = stack.enter_context(ServerThread(ghl.create_app(ghl.GHLSimulator(grants, SimState())))).url
        apps_url = stack.enter_context(ServerThread(tenants.create_app(keyed, gymdesk.create_app, API_KEY))).url
        seed(ghl_url, apps_url, keyed, args.people)
        write_location_profiles(home / "profiles", ["gymdesk"], list(keyed), f"dag_shape: {shape}\n")
        env = demo_env(home, ghl_url, {})
        env.update(stack.enter_context(celery_services_env()))
        apps = {("gymdesk", key): apps_url + tenants.tenant_path(key) for key in keyed}
        env.update(location_connections(ghl_url, tokens, apps, API_KEY))
        env.update({"CRM_SYNC_PROFILES_DIR": str(home / "profiles"),
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(args.parse_interval),
                    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(args.parse_interval)})
        eng = create(env["WAREHOUSE_URL"])
        migrate(eng)  # the empty schema: what a run adds is measured from here
        eng.dispose()
        rows0, bytes0 = warehouse_size(env["WAREHOUSE_URL"])
        prepare_metadata(env, home / "logs")  # with every location's pool
        with airflow_services(env, home / "logs", timeout=600) as services:
            dags_visible_s = wait_for_dags(services, len(keyed), deadline)
            parse_s = dag_parse_seconds(services)
            meta0 = services.query("SELECT pg_database_size(current_database())")[0][0]
            logs0, cpu0, t0 = log_bytes(Path(env["AIRFLOW_HOME"])), cpu(services), time.monotonic()
            api = stack.enter_context(httpx.Client(
                base_url=f"http://127.0.0.1:{services.env['AIRFLOW__API__PORT']}/api/v2", timeout=60))
            trigger_all(api, [DAG_PREFIX + key for key in keyed])
            services.wait_for_runs("run_type = ? AND dag_id LIKE ?", ("manual", DAG_PREFIX + "%"), deadline)
            phase_wall = time.monotonic() - t0
            cpu1 = cpu(services)
            figures = run_figures(services)
            meta1 = services.query("SELECT pg_database_size(current_database())")[0][0]
            logs1 = log_bytes(Path(env["AIRFLOW_HOME"]))
        rows1, bytes1 = warehouse_size(env["WAREHOUSE_URL"])
        ghl_calls = httpx.get(f"{ghl_url}/_sim/calls", timeout=10).json()
        app_calls = httpx.get(f"{apps_url}/_sim/calls", timeout=10).json()
    runs = max(1, figures["runs_ok"] + figures["runs_failed"])
    spent = {role: round(cpu1[role] - cpu0[role], 1) for role in cpu0}
    airflow_cpu = sum(v for role, v in spent.items() if role != "simulators")
    return {**figures, "dags": len(keyed), "dags_visible_s": dags_visible_s, "dag_parse_seconds": parse_s,
            "phase_wall_s": round(phase_wall, 1), "cpu_s": spent,
            "cpu_s_per_run": round(airflow_cpu / runs, 2),
            "cpu_s_per_task_run": round(airflow_cpu / max(1, figures["task_runs"]), 2),
            "task_seconds_per_run": round(figures["task_seconds"] / runs, 2),
            "ghl_calls_per_run": round(ghl_calls.get("total", 0) / runs, 1),
            "app_calls_per_run": round(app_calls.get("total", 0) / runs, 1),
            "total_calls": ghl_calls.get("total", 0) + app_calls.get("total", 0),
            "rate_limited_429": sum(v for k, v in ghl_calls.items() if k.startswith("429")),
            "location_tokens_minted": 0,  # static connections (Private Integration Tokens): nothing to mint
            "warehouse_rows_per_run": round((rows1 - rows0) / runs, 1),
            "warehouse_bytes_per_run": round((bytes1 - bytes0) / runs),
            "warehouse_bytes_total": bytes1, "metadata_bytes_per_task_run": round((meta1 - meta0) /
                                                                                  max(1, figures["task_runs"])),
            "task_log_bytes_per_task_run": round((logs1 - logs0) / max(1, figures["task_runs"])),
            "seconds": round(time.monotonic() - started)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--locations", type=int, default=100)
    parser.add_argument("--people", type=int, default=20, help="GHL contacts and Gymdesk members per location")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: steps, single_task")
    parser.add_argument("--parse-interval", type=int, default=30, help="the dag-processor's file interval, s")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per shape before giving up")
    args = parser.parse_args()
    started = time.monotonic()
    keyed = locations(args.locations)
    shapes = {shape: shape_phase(shape, keyed, args) for shape in args.shapes.split(",")}
    every = list(shapes.values())
    result = {"locations": args.locations, "discovered": min(s["dags"] for s in every), "mode": "static",
              "people": args.people, **{key: sum(s[key] for s in every) for key in (
                  "runs_ok", "runs_failed", "location_tokens_minted", "total_calls", "rate_limited_429")},
              **{key: max(s[key] for s in every) for key in ("dag_parse_seconds", "schedule_delay_p95_s")},
              "wall_s": round(time.monotonic() - started), "shapes": shapes}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

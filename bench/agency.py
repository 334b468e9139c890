"""Agency bench: an agency's whole book (100 locations) through the CeleryExecutor on this machine, in
both DAG shapes, and what one location costs.

Each shape gets a fresh stack (harness/celery_stack.py: PostgreSQL metadata and warehouse, Redis,
api-server, scheduler, dag-processor, two Celery workers) and fresh simulators: the GHL simulator with
one agency install on every location and a few where the app is not installed (each location with its
own burst limit and daily budget), and one app server holding a Gymdesk account per location
(harness/simulators/tenants.py), each seeded with ``--people`` GHL contacts and as many Gymdesk
members, so each run creates them on the other side. One agency profile (``agency:``, connection
ghl_agency; app connections by the naming rule gymdesk_{location_id}, as AIRFLOW_CONN_ variables) has
its discovery DAG run first; once the dag-processor has parsed a DAG for every discovered location,
all are unpaused and triggered at once through the REST API, and the bench waits for every run.
``--mode static`` lists the locations in the profile instead (``locations:``, a Private Integration
Token each): no discovery, no location tokens.

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
ROLES = ("api-server", "scheduler", "dag-processor", "celery-workers")
COMPANY, CLIENT_ID, APP_ID = "companyBench000000001", "benchapp-agency", "benchapp"
UNINSTALLED = 3  # locations of the agency where the app is not installed: discovered, never synced
TOKEN_TTL_S = 3600  # a location token's lifetime: at most one mint per location in a phase shorter than this
DAG_PREFIX = {"agency": "ghl_agency_", "static": "ghl_gymdesk_"}


def locations(count: int, mode: str) -> dict[str, str]:
    """Location key (its DAG id's suffix, as discovery keys it) -> GHL location id."""
    if mode == "static":
        return {f"l{n:03d}": f"locAgency{n:011d}" for n in range(count)}
    return {f"loc{n:03d}": f"Loc{n:03d}" for n in range(count)}


def agency_install(ghl_url: str, keyed: dict[str, str]) -> dict[str, str]:
    """The agency's install on every location (and UNINSTALLED more without the app), each with its own
    burst limit and daily budget; answers the agency connection's credentials."""
    located = [{"id": location, "name": f"Gym {location}", "address": f"{n} Main St", "installed": True,
                "burst_max": (100, 80, 60)[n % 3], "daily_max": 50_000 + 1000 * n}
               for n, location in enumerate(keyed.values())]
    located += [{"id": f"Gone{n:03d}", "name": f"Gone {n}", "installed": False} for n in range(UNINSTALLED)]
    answer = httpx.post(f"{ghl_url}/_sim/agency", timeout=30, json={
        "client_id": CLIENT_ID, "company_id": COMPANY, "app_id": APP_ID, "locations": located})
    answer.raise_for_status()
    return answer.json()


def connections(mode: str, ghl_url: str, apps_url: str, keyed: dict[str, str], sim: ghl.GHLSimulator) -> dict:
    """Airflow connections as variables: GHL's (the agency's, or one per location) and each location's app."""
    apps = {("gymdesk", key): apps_url + tenants.tenant_path(key) for key in keyed}
    if mode == "static":
        tokens = {key: (f"pit-{key}", location) for key, location in keyed.items()}
        sim.tokens.update({token: {"location_id": location, "scopes": list(ghl.SCOPES)}
                           for token, location in tokens.values()})
        return location_connections(ghl_url, tokens, apps, API_KEY)
    install = agency_install(ghl_url, keyed)
    extra = {"company_id": COMPANY, "app_id": install["app_id"], "client_id": install["client_id"],
             "client_secret": install["client_secret"], "refresh_token": install["refresh_token"]}
    env = {"AIRFLOW_CONN_GHL_AGENCY": json.dumps({"conn_type": "ghl", "host": ghl_url, "extra": extra})}
    # the naming rule gymdesk_{location_id}: one app account (a tenant) per location
    env.update({f"AIRFLOW_CONN_GYMDESK_{keyed[key].upper()}": json.dumps(
        {"conn_type": "crm_sync_app", "host": url, "password": API_KEY}) for (_, key), url in apps.items()})
    return env


def write_profiles(directory: Path, mode: str, keyed: dict[str, str], shape: str) -> None:
    if mode == "static":
        write_location_profiles(directory, ["gymdesk"], list(keyed), f"dag_shape: {shape}\n")
        return
    from crm_sync.paths import PROFILES_DIR

    text = (PROFILES_DIR / "gymdesk.yaml").read_text().replace("name: gymdesk\n", "name: agency\n", 1)
    text = text.replace("dag_id: ghl_gymdesk\n", "dag_id: ghl_agency\n", 1)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "agency.yaml").write_text(text + f"\ndag_shape: {shape}\nagency:\n  conn_id: ghl_agency\n"
                                           "  app_conn_id: gymdesk_{location_id}\n")


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


def location_dags(services: Services, prefix: str) -> list[str]:
    """The batch DAG of every location the dag-processor has parsed (not the fast lanes, not discovery)."""
    found = services.query("SELECT dag_id FROM dag WHERE NOT is_stale")
    return sorted(d for (d,) in found if d.startswith(prefix) and not d.endswith(("_fast", "_discover")))


def wait_for_dags(services: Services, prefix: str, count: int, deadline: float) -> tuple[list[str], float]:
    """The location DAGs once the dag-processor has parsed ``count``, and how long that took."""
    started = time.monotonic()
    while len(dag_ids := location_dags(services, prefix)) < count:
        services.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the dag-processor parsed {len(dag_ids)} of {count} DAGs in time; "
                               f"logs in {services.log_dir}")
        time.sleep(1)
    return dag_ids, round(time.monotonic() - started, 1)


def discover(services: Services, api: httpx.Client, deadline: float) -> tuple[int, int]:
    """Run the agency's discovery DAG once; the locations it found syncing, and those it knows uninstalled
    (only ones seen installed before: GHL lists where the app is installed)."""
    import sqlalchemy as sa

    trigger_all(api, ["ghl_agency_discover"])
    [run] = services.wait_for_runs("dag_id = ?", ("ghl_agency_discover",), deadline)
    if run["state"] != "success":
        raise RuntimeError(f"discovery failed; logs in {services.log_dir}")
    eng = sa.create_engine(services.env["WAREHOUSE_URL"], poolclass=sa.pool.NullPool)
    with eng.connect() as conn:
        found = conn.execute(sa.text("SELECT count(*) FILTER (WHERE installed AND app_conn_ready), "
                                     "count(*) FILTER (WHERE NOT installed) FROM agency_location")).one()
    eng.dispose()
    return found[0], found[1]


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


def run_figures(services: Services, dag_ids: list[str]) -> dict:
    """Runs and task instances of the location DAGs, from Airflow's metadata database."""
    runs = services.query("SELECT dag_id, run_id, state, run_after, start_date, end_date FROM dag_run "
                          "WHERE run_type = 'manual' AND dag_id IN ?", tuple(dag_ids))
    tis = services.query("SELECT dag_id, run_id, task_id, queued_dttm, start_date, end_date, duration, try_number "
                         "FROM task_instance WHERE dag_id IN ?", tuple(dag_ids))
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
    """One shape on a fresh stack and fresh simulators: discovery, every location's DAG parsed, triggered,
    finished; what it cost."""
    from crm_sync.warehouse.db import create, migrate

    started = time.monotonic()
    deadline = started + args.timeout
    prefix = DAG_PREFIX[args.mode]
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        home = Path(tmp)
        sim = ghl.GHLSimulator({}, SimState(), access_token_ttl_s=TOKEN_TTL_S)
        ghl_url = stack.enter_context(ServerThread(ghl.create_app(sim))).url
        apps_url = stack.enter_context(ServerThread(tenants.create_app(keyed, gymdesk.create_app, API_KEY))).url
        seed(ghl_url, apps_url, keyed, args.people)
        write_profiles(home / "profiles", args.mode, keyed, shape)
        env = demo_env(home, ghl_url, {})
        env.update(stack.enter_context(celery_services_env()))
        env.update(connections(args.mode, ghl_url, apps_url, keyed, sim))
        env.update({"CRM_SYNC_PROFILES_DIR": str(home / "profiles"),
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(args.parse_interval),
                    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(args.parse_interval)})
        eng = create(env["WAREHOUSE_URL"])
        migrate(eng)  # the empty schema: what a run adds is measured from here
        eng.dispose()
        prepare_metadata(env, home / "logs")  # with every location's pool (static) or the agency's
        with airflow_services(env, home / "logs", timeout=600) as services:
            api = stack.enter_context(httpx.Client(
                base_url=f"http://127.0.0.1:{services.env['AIRFLOW__API__PORT']}/api/v2", timeout=60))
            discovered, uninstalled = discover(services, api, deadline) if args.mode == "agency" else (len(keyed), 0)
            dag_ids, dags_visible_s = wait_for_dags(services, prefix, discovered, deadline)
            parse_s = dag_parse_seconds(services)
            rows0, bytes0 = warehouse_size(env["WAREHOUSE_URL"])
            meta0 = services.query("SELECT pg_database_size(current_database())")[0][0]
            logs0, cpu0, t0 = log_bytes(Path(env["AIRFLOW_HOME"])), cpu(services), time.monotonic()
            trigger_all(api, dag_ids)
            services.wait_for_runs("run_type = ? AND dag_id IN ?", ("manual", tuple(dag_ids)), deadline)
            phase_wall = time.monotonic() - t0
            cpu1 = cpu(services)
            figures = run_figures(services, dag_ids)
            meta1 = services.query("SELECT pg_database_size(current_database())")[0][0]
            logs1 = log_bytes(Path(env["AIRFLOW_HOME"]))
        rows1, bytes1 = warehouse_size(env["WAREHOUSE_URL"])
        ghl_calls = httpx.get(f"{ghl_url}/_sim/calls", timeout=10).json()
        app_calls = httpx.get(f"{apps_url}/_sim/calls", timeout=10).json()
        mints = httpx.get(f"{ghl_url}/_sim/agency/mints", timeout=10).json()
    runs = max(1, figures["runs_ok"] + figures["runs_failed"])
    spent = {role: round(cpu1[role] - cpu0[role], 1) for role in cpu0}
    airflow_cpu = sum(v for role, v in spent.items() if role != "simulators")
    task_runs = max(1, figures["task_runs"])
    return {**figures, "discovered": discovered, "uninstalled_seen": uninstalled, "dags": len(dag_ids),
            "dags_visible_s": dags_visible_s, "dag_parse_seconds": parse_s,
            "phase_wall_s": round(phase_wall, 1), "cpu_s": spent,
            "cpu_s_per_run": round(airflow_cpu / runs, 2), "cpu_s_per_task_run": round(airflow_cpu / task_runs, 2),
            "task_seconds_per_run": round(figures["task_seconds"] / runs, 2),
            "ghl_calls_per_run": round(ghl_calls.get("total", 0) / runs, 1),
            "app_calls_per_run": round(app_calls.get("total", 0) / runs, 1),
            "total_calls": ghl_calls.get("total", 0) + app_calls.get("total", 0),
            "rate_limited_429": sum(v for k, v in ghl_calls.items() if k.startswith("429")),
            "location_tokens_minted": sum(mints.values()), "most_mints_of_a_location": max(mints.values(), default=0),
            "warehouse_rows_per_run": round((rows1 - rows0) / runs, 1),
            "warehouse_bytes_per_run": round((bytes1 - bytes0) / runs), "warehouse_bytes_total": bytes1,
            "metadata_bytes_per_task_run": round((meta1 - meta0) / task_runs),
            "task_log_bytes_per_task_run": round((logs1 - logs0) / task_runs),
            "seconds": round(time.monotonic() - started)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--locations", type=int, default=100)
    parser.add_argument("--people", type=int, default=20, help="GHL contacts and Gymdesk members per location")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: steps, single_task")
    parser.add_argument("--mode", choices=("agency", "static"), default="agency",
                        help="agency: discovered locations; static: listed in the profile")
    parser.add_argument("--parse-interval", type=int, default=30, help="the dag-processor's file interval, s")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per shape before giving up")
    args = parser.parse_args()
    started = time.monotonic()
    keyed = locations(args.locations, args.mode)
    shapes = {}
    for shape in args.shapes.split(","):
        shapes[shape] = shape_phase(shape, keyed, args)
        print(f"{shape}: {json.dumps(shapes[shape])}", file=sys.stderr, flush=True)  # kept if a later shape fails
    every = list(shapes.values())
    result = {"locations": args.locations, "discovered": min(s["discovered"] for s in every), "mode": args.mode,
              "people": args.people, **{key: sum(s[key] for s in every) for key in (
                  "runs_ok", "runs_failed", "location_tokens_minted", "total_calls", "rate_limited_429")},
              **{key: max(s[key] for s in every) for key in ("dag_parse_seconds", "schedule_delay_p95_s")},
              "wall_s": round(time.monotonic() - started), "shapes": shapes}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

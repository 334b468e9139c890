"""The API budget as the DAG spends it: the real ``ghl_gymdesk`` DAG run by ``airflow dags test``.

Simulators (GHL with its real limits, Gymdesk) on localhost sockets with 100 ms added latency,
seeded with N people: 5 in 6 are GHL contacts, 5 in 6 Gymdesk members (so 4 in 6 on both; a tenth
of the people have a last name that differs between the two, the rest agree);
every second GHL contact holds a task, every fourth a note and every fourth an appointment still
to come (on one of three calendars). Three runs of the DAG, each a real Airflow run:

1. the first sync; 2. a run with nothing changed; 3. a run after 1% of GHL contacts were edited.

Per run: calls per side by route (the simulators count them), raw rows added, wall time, the
load's writes, and the report task's refresh of the analysts' models (its logged stats, and its
seconds as a share of the run's wall time: ``models_share``, at most 0.10). The last line is one
JSON object; the figures are explained in bench/RESULTS.md.

Run: .venv/bin/python bench/dag_budget.py [--people 10000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from crm_sync.pipeline import handoff  # noqa: E402
from harness.demo_data import LOCATION_ID  # noqa: E402
from harness.simulators import ghl, gymdesk  # noqa: E402
from harness.simulators.base import ServerThread, SimState, iso_z  # noqa: E402

DAG_ID = "ghl_gymdesk"
GHL_TOKEN, APP_KEY = "pit-bench-token", "bench-app-key"
GHL_CEILING, APP_CEILING = 9.8, 10.0  # calls/s: the GHL client's pace, the profile's rate_limit_per_second
LATENCY_MS = 100


def seeds(people: int, now: datetime) -> tuple[dict[str, list], dict[str, list]]:
    past = now - timedelta(days=40)
    contacts, tasks, notes, appointments, members = [], [], [], [], []
    for i in range(people):
        email, first, last = f"p{i}@example.com", f"P{i}", f"Lee{i % 97}"
        if i % 6 != 5:
            cid = f"c{i:07d}".ljust(20, "x")
            contacts.append({"id": cid, "locationId": LOCATION_ID, "firstName": first, "lastName": last,
                             "email": email, "source": "Walk-in", "tags": [], "dateAdded": iso_z(past),
                             "dateUpdated": iso_z(past)})
            n = len(contacts)
            if n % 2 == 0:
                tasks.append({"id": f"t{cid}"[:20], "contactId": cid, "title": f"Call {first}", "body": "",
                              "completed": False, "dueDate": iso_z(now + timedelta(days=3)), "dateAdded": iso_z(past)})
            if n % 4 == 1:
                notes.append({"id": f"n{cid}"[:20], "contactId": cid, "body": f"Note about {first}",
                              "dateAdded": iso_z(past)})
            if n % 4 == 2:
                start = now + timedelta(days=1 + n % 60, hours=n % 9)
                appointments.append({"id": f"a{cid}"[:20], "locationId": LOCATION_ID, "contactId": cid,
                                     "calendarId": f"cal{n % 3}", "title": "Session", "appointmentStatus": "confirmed",
                                     "startTime": iso_z(start), "endTime": iso_z(start + timedelta(hours=1)),
                                     "dateAdded": iso_z(past), "dateUpdated": iso_z(past)})
        if i % 6 != 0:
            differs = i % 10 == 3  # a tenth of the people differ between the two systems: one write each
            members.append({"id": f"mem_{i}", "first_name": first, "last_name": last + "-Lee" * differs,
                            "email": email, "phone": None,
                            "company": None, "lead_source": "Walk-in", "status": "active",
                            "created_at": iso_z(past), "updated_at": iso_z(past)})
    return ({"contacts": contacts, "tasks": tasks, "notes": notes, "appointments": appointments},
            {"members": members})


def seed(url: str, collections: dict[str, list]) -> None:
    with httpx.Client(base_url=url + "/_sim", timeout=300) as admin:
        for name, records in collections.items():
            for first in range(0, len(records), 2000):
                admin.post("/seed", json={name: records[first:first + 2000]}).raise_for_status()
        admin.post("/faults", json={"latency_ms": LATENCY_MS}).raise_for_status()


def environment(home: Path, ghl_url: str, app_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "WAREHOUSE_URL"}
    env.update({
        "AIRFLOW_HOME": str(home / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "CRM_SYNC_HOME": str(home), "WAREHOUSE_URL": f"sqlite:///{home / 'warehouse.db'}",
        "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_CONN_GHL_DEFAULT": json.dumps({"conn_type": "ghl", "host": ghl_url, "password": GHL_TOKEN,
                                                "extra": {"location_id": LOCATION_ID}}),
        "AIRFLOW_CONN_GYMDESK_DEFAULT": json.dumps({"conn_type": "crm_sync_app", "host": app_url,
                                                    "password": APP_KEY}),
    })
    return env


def calls(url: str, reset: bool = False) -> dict[str, int]:
    with httpx.Client(base_url=url + "/_sim", timeout=30) as admin:
        if reset:
            admin.post("/calls/reset").raise_for_status()
            return {}
        return {k: v for k, v in admin.get("/calls").json().items() if k != "total"}


def is_read(route: str) -> bool:
    return route.startswith("GET ") or route.endswith("/search")


def run_once(name: str, env: dict[str, str], ghl_url: str, app_url: str, home: Path) -> dict:
    warehouse = sa.create_engine(env["WAREHOUSE_URL"])
    calls(ghl_url, reset=True)
    calls(app_url, reset=True)
    before = _raw_rows(warehouse)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "airflow", "dags", "test", DAG_ID], env=env, capture_output=True,
                            text=True, timeout=6 * 3600)
    wall = time.monotonic() - started
    (home / f"{name}.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0 or "state=success" not in result.stdout + result.stderr:
        raise SystemExit(f"run {name} failed; see {home / f'{name}.log'}")
    ghl_calls, app_calls = calls(ghl_url), calls(app_url)
    with warehouse.connect() as conn:
        load = json.loads(conn.execute(sa.text(
            "SELECT stats FROM run_log WHERE step = 'load' ORDER BY finished_at DESC LIMIT 1")).scalar_one())
        report = json.loads(conn.execute(sa.text(
            "SELECT stats FROM run_log WHERE step = 'report' ORDER BY finished_at DESC LIMIT 1")).scalar_one())
        extract = {side: {**json.loads(stats), "task_full_scan": handoff.parse(
            json.loads(handed) if handed else None, json.loads(stats)).task_full_scan}
            for side, stats, handed in conn.execute(sa.text(
                "SELECT side, stats, handoff FROM run_log WHERE step = 'extract' ORDER BY finished_at DESC LIMIT 2"))}
    figures = {
        "ghl_calls": sum(ghl_calls.values()), "ghl_reads": sum(v for k, v in ghl_calls.items() if is_read(k)),
        "app_calls": sum(app_calls.values()), "raw_rows_added": _raw_rows(warehouse) - before,
        "wall_s": round(wall, 1), "ghl_by_route": ghl_calls, "app_by_route": app_calls,
        "writes_sent": load.get("sent", 0), "load_api": load.get("api"), "load_s_by_side": load.get("send_s_by_side"),
        "extract_ghl": {k: extract.get("ghl", {}).get(k) for k in ("extracted", "landed", "unchanged",
                                                                   "task_full_scan")},
        "extract_app": {k: extract.get("app", {}).get(k) for k in ("extracted", "landed", "unchanged")},
        "models": report.get("people_models"),  # the report task's refresh of the analysts' models
        "models_share": round(report["people_models"]["seconds"] / wall, 4) if report.get("people_models") else None,
    }
    warehouse.dispose()
    print(f"{name}: {json.dumps(figures)}", flush=True)
    return figures


def _raw_rows(warehouse: sa.Engine) -> int:
    with warehouse.connect() as conn:
        try:
            return conn.execute(sa.text("SELECT count(*) FROM raw_record")).scalar_one()
        except sa.exc.OperationalError:  # no warehouse yet
            return 0


def throughput_ratio(load: dict) -> float:
    """Calls per second each side's load sent while it had writes, against the sum of both ceilings."""
    busy, api = load["load_s_by_side"] or {}, load["load_api"] or {}
    rates = {side: api[side]["calls"] / seconds for side, seconds in busy.items() if seconds > 0 and api.get(side)}
    ceilings = {"ghl": GHL_CEILING, "app": APP_CEILING}
    return round(sum(rates.values()) / sum(ceilings[side] for side in rates), 3) if rates else 0.0


def edit_one_percent(ghl_url: str, contacts: list[dict]) -> int:
    edited = contacts[:: 100]
    with httpx.Client(base_url=ghl_url, timeout=60,
                      headers={"Authorization": f"Bearer {GHL_TOKEN}", "Version": ghl.API_VERSION}) as api:
        for contact in edited:
            api.put(f"/contacts/{contact['id']}", json={"companyName": "Edited in GHL"}).raise_for_status()
            time.sleep(0.11)  # GHL's rate limit
    return len(edited)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--home", type=Path, help="working folder (default: a new temporary one)")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="dag_budget_"))
    home.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ghl_seed, app_seed = seeds(args.people, now)
    ghl_sim = ghl.GHLSimulator({GHL_TOKEN: {"location_id": LOCATION_ID, "scopes": list(ghl.SCOPES)}}, SimState())
    with ServerThread(ghl.create_app(ghl_sim)) as ghl_server, \
            ServerThread(gymdesk.create_app(APP_KEY, SimState())) as app_server:
        seed(ghl_server.url, ghl_seed)
        seed(app_server.url, app_seed)
        env = environment(home, ghl_server.url, app_server.url)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True,
                       timeout=1800)
        first = run_once("first_sync", env, ghl_server.url, app_server.url, home)
        no_change = run_once("no_change", env, ghl_server.url, app_server.url, home)
        edited = edit_one_percent(ghl_server.url, ghl_seed["contacts"])
        one_percent = run_once("one_percent", env, ghl_server.url, app_server.url, home)
    contacts = len(ghl_seed["contacts"])
    naive = math.ceil(contacts / 500) + 3 * contacts  # every contact, then its tasks, notes and appointments
    result = {
        "first_sync_calls_per_contact": round(first["ghl_reads"] / contacts, 3),
        "no_change_ghl_calls": no_change["ghl_calls"],
        "one_percent_ghl_calls": one_percent["ghl_calls"],
        "naive_calls_per_run": naive,
        "calls_ratio_vs_naive": round(naive / max(1, one_percent["ghl_calls"]), 1),
        "no_change_raw_rows_added": no_change["raw_rows_added"],
        "load_throughput_ratio": throughput_ratio(first),
        "projected_first_sync_100k_calls": round(first["ghl_calls"] / contacts * 100_000),
        "models_share_max": max((r["models_share"] or 0) for r in (first, no_change, one_percent)),
    }
    print(f"people {args.people}: {contacts} GHL contacts, {len(ghl_seed['tasks'])} tasks, {len(ghl_seed['notes'])} "
          f"notes, {len(ghl_seed['appointments'])} upcoming appointments; {edited} contacts edited; home {home}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

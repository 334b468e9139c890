"""The console's index at 1,000 profiles (issue 26): its first page and a search, against the index as
it was (a baseline commit's code) on the same warehouse, side by side.

A profiles folder holds one profile (gymdesk) with --locations locations, two per GHL connection
(crm_sync.profile.per_location makes one profile and DAG each); a warehouse gets --runs runs of each
(bench/console_runs.seed: run_log, raw records, quarantine, outbox; finished today, so they count
against the day's GHL calls) and review candidates for one profile in ten. Then, through the real app
in-process (FastAPI's TestClient; Airflow's login and DAG permissions stood in for: the user reads
every DAG), each timed --repeat times after one warm-up, p50 and p95 in milliseconds:
- first page: `GET /` (50 profiles, grouped by location, their newest runs, charts, review counts
  and today's GHL calls);
- search: `GET /?q=<a profile's name in capitals>` (one profile found among 1,000).
The baseline is the code of --baseline (default ca7f774, the index before paging: every readable
profile, its runs, review queue and charts read one profile at a time), exported with `git archive`
into a temporary folder and timed in a subprocess on the same warehouse, --baseline-repeat times; it
ignores `q`, so its "search" is the whole index again. SQLite in a temporary folder first, then
PostgreSQL at 127.0.0.1:5432 (user postgres) in a database `bench_console_index_<pid>`, created and
dropped here (--no-pg skips it). Prints one JSON object as its last line.

Run: .venv/bin/python bench/console_index.py [--locations 1000] [--runs 3] [--repeat 20] [--no-pg]
     [--baseline REV | --no-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
SEARCHED = 777  # the location whose profile the search looks for


def located_profiles(folder: Path, locations: int) -> Path:
    """gymdesk with ``locations`` locations, two per GHL connection (ghl_c0000: l0000 and l0001, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    listed = "".join(f"  - {{key: l{n:04d}, conn_id: ghl_c{n // 2:04d}}}\n" for n in range(locations))
    gymdesk = (ROOT / "include" / "profiles" / "gymdesk.yaml").read_text()
    (folder / "gymdesk.yaml").write_text(gymdesk + "\nlocations:\n" + listed)
    return folder


def seed(url: str, runs: int) -> dict[str, Any]:
    """Migrate the warehouse at ``url`` and give every profile ``runs`` runs."""
    from crm_sync.profile import usable_profiles
    from crm_sync.warehouse.db import create, migrate
    from crm_sync.warehouse.tables import review_candidate

    from bench.console_runs import seed as seed_runs

    every = usable_profiles(Path(os.environ["CRM_SYNC_PROFILES_DIR"]))[0]
    began = time.perf_counter()
    warehouse = create(url)
    migrate(warehouse)
    with warehouse.begin() as conn:
        for profile in every:
            seed_runs(conn, profile, runs, landed=5, writes=4)
        conn.execute(sa.insert(review_candidate), [
            {"profile": profile.name, "ghl_id": f"g{k}", "app_id": f"a{k}", "reason": "by email, another first name",
             "run_id": "seed"} for profile in every[::10] for k in range(3)])
    with warehouse.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE" if warehouse.dialect.name == "postgresql" else "ANALYZE"))
    warehouse.dispose()
    return {"profiles": len(every), "runs_each": runs, "seed_s": round(time.perf_counter() - began, 1)}


def measure(repeat: int) -> dict[str, Any]:
    """Time the first page and a search through the app of whichever crm_sync is first on sys.path."""
    from airflow.api_fastapi import app as airflow_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from crm_sync.profile import usable_profiles
    from crm_sync.warehouse.db import engine
    from crm_sync.web import security
    from crm_sync.web.app import create_app

    from bench.console import percentile, timed

    dags = {p.dag_id for p in usable_profiles(Path(os.environ["CRM_SYNC_PROFILES_DIR"]))[0]}

    class ReadsEveryDag:
        def get_authorized_dag_ids(self, user, method):
            return dags

    airflow_app.get_auth_manager = ReadsEveryDag
    app = create_app()
    app.dependency_overrides.update({depends.dependency: lambda: None for depends in security.LOGGED_IN})
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="viewer", role="viewer")
    client = TestClient(app)
    pages: dict[str, str] = {}

    def get(name: str, **params: str):
        def call():
            answer = client.get("/", params=params)
            assert answer.status_code == 200, answer.text[-2000:]
            pages[name] = answer.text
        return call

    searched = f"GYMDESK__L{min(SEARCHED, len(dags) - 1):04d}"
    seconds = {"first_page": timed([get("first_page")], repeat), "search": timed([get("search", q=searched)], repeat)}
    engine().dispose()
    rows = {name: page.count("/review\">") for name, page in pages.items()}  # one review link a profile
    return {**{f"{what}_p50_ms": percentile(took, 0.5) for what, took in seconds.items()},
            **{f"{what}_p95_ms": percentile(took, 0.95) for what, took in seconds.items()},
            "rows_shown": rows, "page_kb": round(len(pages["first_page"].encode()) / 1024)}


def baseline(rev: str, repeat: int) -> dict[str, Any]:
    """`measure` with the code of ``rev``, in a subprocess, on the warehouse WAREHOUSE_URL names."""
    with tempfile.TemporaryDirectory(prefix="console-index-base-") as code:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "plugins"], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", code], input=archive.stdout, check=True)
        done = subprocess.run([sys.executable, __file__, "--measure-with", f"{code}/plugins", "--repeat", str(repeat)],
                              check=True, capture_output=True, text=True, env=os.environ)
    return {"rev": rev, **json.loads(done.stdout.strip().splitlines()[-1])}


def both(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Seed the warehouse at ``url``, then time the index now and, unless told not to, the baseline."""
    from crm_sync.warehouse.db import engine

    os.environ["WAREHOUSE_URL"] = url
    engine.cache_clear()
    result = {**seed(url, args.runs), "now": measure(args.repeat)}
    if args.baseline:
        result["baseline"] = baseline(args.baseline, args.baseline_repeat)
        result["speedup_first_page_p50"] = round(result["baseline"]["first_page_p50_ms"]
                                                 / result["now"]["first_page_p50_ms"], 1)
    return result


def _postgres(args: argparse.Namespace) -> dict[str, Any]:
    from crm_sync.warehouse.db import engine
    from harness.celery_stack import postgres_database

    with postgres_database("bench_console_index") as url:
        try:
            return both(url, args)
        finally:
            engine.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--locations", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each profile")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--baseline", default="ca7f774", help="the commit whose index is the baseline")
    parser.add_argument("--no-baseline", dest="baseline", action="store_const", const="")
    parser.add_argument("--baseline-repeat", type=int, default=5)
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--measure-with", help=argparse.SUPPRESS)  # the baseline's subprocess: that code's plugins
    args = parser.parse_args()
    if args.measure_with:
        sys.path[:0] = [args.measure_with, str(ROOT)]
        print(json.dumps(measure(args.repeat)))
        return
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    with tempfile.TemporaryDirectory(prefix="console-index-") as home:
        os.environ["CRM_SYNC_HOME"] = home
        os.environ["CRM_SYNC_PROFILES_DIR"] = str(located_profiles(Path(home) / "profiles", args.locations))
        result: dict[str, Any] = {"locations": args.locations,
                                  "sqlite": both(f"sqlite:///{home}/warehouse.db", args)}
        if not args.no_pg:
            result["postgresql"] = _postgres(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

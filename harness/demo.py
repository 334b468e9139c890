"""`make demo [PROFILE=<app>]`: a real two-way sync through Airflow on the embedded defaults, from nothing.

1. starts the GHL simulator and the profile's app simulator on free localhost ports, seeded
   with demo data (for csv_import, writes a CSV file to import instead);
2. initialises Airflow (SQLite metadata) and the warehouse (SQLite file) under .demo/;
3. backfills the profile's DAG over the last days (`airflow backfill create`, run by the
   scheduler), then runs it once more by hand with nothing changed;
4. prints what each run did per side and the report paths, stops everything it started.

The last line is ``demo: profile=<dag id> writes=<n> rerun_writes=<n> quarantined=<n> report=<path>``.

``--executor celery`` (`make demo EXECUTOR=celery`) runs the same on this machine's services:
Airflow metadata and the warehouse on PostgreSQL, Redis as the Celery broker, two Celery workers
(harness/celery_stack.py); the rerun is a triggered run through them, and the last line names
``executor=celery`` after the profile.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from harness.airflow_runner import airflow, prepare_metadata, run_backfill
from harness.demo_apps import app_seed, ghl_children
from harness.demo_data import LOCATION_ID, build

ROOT = Path(__file__).resolve().parents[1]
DEMO_HOME = ROOT / ".demo"
MARKER = ".crm-sync-demo"  # in a demo's home: a later demo may empty that folder, and only that
GHL_TOKEN, APP_KEY = "pit-demo-token", "demo-app-key"
CLIENT_ID, CLIENT_SECRET = "demo-client", "demo-client-secret"  # the generic app's OAuth client
APP_WEBHOOK_SECRET = "demo-app-webhook-secret"  # the apps sign their webhooks with it (app_push.register_target)
RECEIVER_PATH = "/crm-sync/webhooks/ghl"  # the api-server's GHL webhook receiver (crm_sync.web)


@contextmanager
def simulator(name: str, seed: dict, home: Path, zone: str = "UTC") -> Iterator[str]:
    """Run one simulator as its own process; yield its URL; stop it on the way out. ``zone``: the
    shop's, for an app that keeps times without one (the profile's ``timezone``). Its records are
    saved to ``<name>.state.json`` when it stops and loaded from there when that file exists (`make ui`)."""
    seed_file, url_file, log_file = home / f"{name}.seed.json", home / f"{name}.url", home / f"{name}.log"
    seed_file.write_text(json.dumps(seed))
    url_file.unlink(missing_ok=True)
    with log_file.open("a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "harness.simulators", name, "--seed", str(seed_file), "--url-file", str(url_file),
             "--state-file", str(home / f"{name}.state.json"),
             "--token", GHL_TOKEN, "--location", LOCATION_ID, "--api-key", APP_KEY,
             *(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET] if name == "generic" else []),
             *(["--zone", zone] if name == "mygadgetrepairs" else [])],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": _pythonpath()})
    try:
        deadline = time.monotonic() + 30
        while not url_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} simulator did not start; see {log_file}")
            time.sleep(0.1)
        yield url_file.read_text()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _pythonpath() -> str:
    return os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])


def app_connection(profile, app_url: str) -> dict[str, str]:
    """The Airflow connection of the profile's app, pointing at its simulator."""
    if profile.app.kind == "csv":
        return {}
    conn: dict = {"conn_type": "crm_sync_app", "host": app_url + ("/v1" if profile.name == "mygadgetrepairs" else "")}
    conn["extra"] = {"webhook_secret": APP_WEBHOOK_SECRET}  # what the app signs its webhooks with
    if profile.app.auth.type == "oauth_client_credentials":
        conn["extra"].update(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    else:
        conn["password"] = APP_KEY
    return {f"AIRFLOW_CONN_{profile.app.conn_id.upper()}": json.dumps(conn)}


def write_csv_import(profile, data, home: Path) -> Path:
    """The demo people as a spreadsheet export, with the usual mistakes (a duplicate, a bad email)."""
    import csv

    folder = home / "imports" / profile.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "people.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["Email", "First Name", "Last Name", "Phone", "Company", "Tags", "Notes"])
        members = [m for m in data.gymdesk_members if m["id"]]
        for n, m in enumerate(members):
            writer.writerow([m["email"], m["first_name"], m["last_name"], m["phone"] or "", m["company"] or "",
                             "imported;vip" if n % 3 == 0 else "imported", "Met at the open day" if n % 4 == 0 else ""])
        writer.writerow([members[0]["email"], "Duplicate", "Row", "", "", "", ""])
    return path


def located_profiles(home: Path, name: str, *, only: bool = False) -> Path:
    """include/profiles copied to ``home/profiles``, with profile ``name`` naming the simulator's GHL
    location (``ghl.location_id``): the receiver routes that location's webhooks to it and its DAG
    runs on the location's asset as well as its cron. A copy for the demo (CRM_SYNC_PROFILES_DIR):
    a location id is an account's own, and ``demo-location`` in the shipped files would schedule
    every deployment on a location that does not exist. ``only``: no other profile in the copy."""
    from crm_sync.profile import load_profile

    folder = home / "profiles"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for source in sorted((ROOT / "include" / "profiles").glob("*.yaml")):
        if only and source.stem != name:
            continue
        text = source.read_text()
        if source.stem == name:
            text = text.replace("\nghl:\n  conn_id: ghl_default\n",
                                f"\nghl:\n  conn_id: ghl_default\n  location_id: {LOCATION_ID}\n", 1)
        (folder / source.name).write_text(text)
    if load_profile(folder / f"{name}.yaml").ghl.location_id != LOCATION_ID:
        raise RuntimeError(f"profile {name}: no 'ghl:' section with 'conn_id: ghl_default' to add the demo's "
                           "location_id to")
    return folder


def demo_env(home: Path, ghl_url: str, app_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "WAREHOUSE_URL"}
    env.update({
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "CRM_SYNC_HOME": str(home),
        "PYTHONPATH": _pythonpath(),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_CONN_GHL_DEFAULT": json.dumps({"conn_type": "ghl", "host": ghl_url, "password": GHL_TOKEN,
                                                "extra": {"location_id": LOCATION_ID}}),
        **app_env,
    })
    return env


def last_interval_starts(schedule: str, now: datetime, count: int) -> list[datetime]:
    """Starts of the last ``count`` complete intervals of a cron schedule, oldest first."""
    from croniter import croniter

    moments = croniter(schedule, now)
    moments.get_prev(datetime)  # the end of the last complete interval
    return sorted(moments.get_prev(datetime) for _ in range(count))


def print_run(title: str, summary: dict, report: str) -> None:
    print(f"\n{title}: {summary['run_id']}")
    for side, s in summary["sides"].items():
        print(f"  {side:<4} extracted={s['extracted']:<4} (unchanged={s['unchanged']:<4} changed={s['changed']:<3} "
              f"quarantined={s['quarantined']:<3}) written: created={s['created']:<3} updated={s['updated']:<3} "
              f"failed={s['failed']:<2} api_calls={s['api_calls']}")
    print(f"  report: {report}")


def main() -> int:
    # `kill` (SIGTERM) unwinds like Ctrl-C, so every simulator and Airflow process is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="gymdesk", help="a profile in include/profiles (file name)")
    parser.add_argument("--intervals", type=int, default=3, help="the last intervals of the schedule to backfill")
    parser.add_argument("--executor", choices=("local", "celery"), default="local",
                        help="celery: PostgreSQL, Redis and two Celery workers on this machine")
    parser.add_argument("--home", type=Path, default=DEMO_HOME,
                        help="folder of the demo's simulators, Airflow and warehouse (emptied first); default .demo")
    args = parser.parse_args()
    home = args.home.resolve()

    from crm_sync.profile import ProfileError, profile_by_name

    try:
        profile = profile_by_name(args.profile)
    except (FileNotFoundError, ProfileError) as exc:
        parser.error(f"no usable profile {args.profile!r}: {exc}")
    if home.exists() and any(home.iterdir()) and not (home / MARKER).exists():
        parser.error(f"--home {home} is not empty and holds no earlier demo: the demo empties its home first")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / MARKER).touch()
    now = datetime.now(UTC)
    today = now.date()
    data = build(today)
    data.ghl_children = ghl_children(profile, data, now)
    ghl_seed, _ = data.seeds()
    print(f"demo: {len(data.ghl_contacts)} GHL contacts and {len(data.gymdesk_members)} {profile.name} people "
          f"({data.bad_records} of them bad or ambiguous) in {home}")
    with ExitStack() as stack:
        ghl_url = stack.enter_context(simulator("ghl", ghl_seed, home))
        if profile.app.kind == "csv":
            app_url = str(write_csv_import(profile, data, home))
        else:
            app_seed_rows = app_seed(profile, data, now)
            app_url = stack.enter_context(simulator(profile.name, app_seed_rows, home, profile.timezone))
        print(f"demo: simulators up: GHL {ghl_url}, {profile.name} {app_url}")
        env = demo_env(home, ghl_url, app_connection(profile, app_url))
        celery = args.executor == "celery"
        if celery:
            from harness.celery_stack import celery_services_env

            env.update(stack.enter_context(celery_services_env()))
            print("demo: CeleryExecutor: Airflow metadata and warehouse on PostgreSQL (fresh databases), "
                  f"broker {env['AIRFLOW__CELERY__BROKER_URL']}, two Celery workers")
        prepare_metadata(env, home)
        starts = last_interval_starts(profile.schedule, now, args.intervals)
        print(f"demo: backfilling {profile.dag_id} over its last {args.intervals} intervals ({profile.schedule!r}) "
              f"from {starts[0]:%Y-%m-%d %H:%M} UTC "
              "(scheduler, dag processor and API server start; this takes a minute or two)")
        runs = run_backfill(profile.dag_id, starts[0].isoformat(), starts[-1].isoformat(), env,
                            home / "backfill", then_trigger=celery)
        failed = [r for r in runs if r["state"] != "success"]
        if failed or len(runs) < args.intervals + celery:
            print(f"demo: backfill did not succeed: {runs}; logs in {home / 'backfill'}", file=sys.stderr)
            return 1
        if not celery:  # through Celery, the rerun was the triggered run after the backfill
            print(f"demo: rerunning {profile.dag_id} by hand with nothing changed")
            airflow(["dags", "test", profile.dag_id], env, home / "rerun.log")
            # Left paused like every other profile: an Airflow started later on .demo has no simulators
            # (`make ui` restarts them and unpauses it), so its schedule would only fail. (The Celery
            # demo's metadata database is dropped when it ends.)
            airflow(["dags", "pause", profile.dag_id], env, home / "pause.log")
        backfill_ids = [r["run_id"] for r in runs if r["run_type"] == "backfill"]
        return print_summary(profile, backfill_ids, env.get("WAREHOUSE_URL"), args.executor if celery else None, home)


def print_summary(profile, backfill_run_ids: list[str], warehouse_url: str | None = None,
                  executor: str | None = None, home: Path = DEMO_HOME) -> int:
    os.environ["CRM_SYNC_HOME"] = str(home)
    import sqlalchemy as sa
    from crm_sync.pipeline.report import report_file, summarize
    from crm_sync.warehouse.db import engine
    from crm_sync.warehouse.tables import quarantine, raw_record, run_log

    with engine(warehouse_url or f"sqlite:///{home / 'warehouse.db'}").connect() as conn:
        all_runs = [r.run_id for r in conn.execute(
            sa.select(run_log.c.run_id).where(run_log.c.profile == profile.name, run_log.c.step == "report")
            .order_by(run_log.c.finished_at))]
        rerun_id = next(r for r in reversed(all_runs) if r not in backfill_run_ids)
        writes = 0
        for run_id in backfill_run_ids:
            summary = summarize(conn, profile.name, run_id, profile.zone)
            writes += summary["writes_sent"]
            print_run("backfill run", summary, report_file(conn, profile.name, run_id))
        rerun = summarize(conn, profile.name, rerun_id, profile.zone)
        print_run("rerun", rerun, report_file(conn, profile.name, rerun_id))
        first_report = report_file(conn, profile.name, backfill_run_ids[0])
        quarantined = conn.execute(
            sa.select(sa.func.count(sa.distinct(raw_record.c.side + ":" + raw_record.c.record_key)))
            .select_from(quarantine.join(raw_record, raw_record.c.id == quarantine.c.raw_id))
            .where(quarantine.c.profile == profile.name)).scalar_one()
    named = f" executor={executor}" if executor else ""
    print(f"\ndemo: profile={profile.dag_id}{named} writes={writes} rerun_writes={rerun['writes_sent']} "
          f"quarantined={quarantined} report={first_report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

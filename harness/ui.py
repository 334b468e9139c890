"""`make ui [PROFILE=<app>]`: the Airflow UI on the demo, to trigger, backfill and read reports in.

Runs the demo (or reuses the last one of that profile), then keeps its simulators (continuing
from the records the demo left) and Airflow (api-server, scheduler, dag-processor, triggerer) up
on the embedded defaults, with the demo's connections in the environment of every Airflow process,
so runs, backfills and dry-runs started from the UI sync against the simulators. Profiles without a
connection stay paused. Instant sync works out of the box: the GHL simulator sends its signed
webhooks to the api-server's receiver, which trusts the simulator's TEST key in this demo only
(its processes' environment; the product's default stays GHL's key), and the demo's profile names
the simulator's location (a copy of the profiles in .demo/ui/profiles), so an edit in GHL starts
a run of the profile's fast lane within seconds. The app's simulator, when the profile declares the
app's push (``app.webhooks``), sends its signed webhooks too: an edit in the app reaches GHL alike. Prints two lines:

    ui: url=<base url> user=<user> password=<password> report=<url of the newest run's report>
    try: <one shell command that edits a demo contact in the GHL simulator>

and stays up until Ctrl-C or SIGTERM, then stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from harness.airflow_runner import airflow, airflow_services, free_port
from harness.demo import (APP_WEBHOOK_SECRET, DEMO_HOME, GHL_TOKEN, RECEIVER_PATH, ROOT, app_connection, demo_env,
                          located_profiles, simulator)
from harness.simulators import ghl_keys
from harness.simulators.app_push import register_target

USER = "admin"


def demo_ready(profile) -> bool:
    """The last demo ran this profile to the end: its warehouse, Airflow and simulators' records are kept."""
    app_state = profile.app.kind == "csv" or (DEMO_HOME / f"{profile.name}.state.json").exists()
    return app_state and all((DEMO_HOME / name).exists()
                             for name in ("ghl.state.json", "warehouse.db", "airflow/airflow.db"))


def port_or_free(port: int) -> int:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def newest_run(profile) -> str:
    import sqlalchemy as sa

    from crm_sync.warehouse.db import engine
    from crm_sync.warehouse.tables import run_log

    with engine(f"sqlite:///{DEMO_HOME / 'warehouse.db'}").connect() as conn:
        return conn.execute(sa.select(run_log.c.run_id).where(run_log.c.profile == profile.name)
                            .order_by(run_log.c.finished_at.desc()).limit(1)).scalar_one()


def demo_contact(profile, ghl_url: str) -> str | None:
    """A GHL contact of the demo linked to an app record (the first by id), if there is one."""
    import httpx
    import sqlalchemy as sa

    from crm_sync.warehouse.db import engine
    from crm_sync.warehouse.tables import xref

    in_ghl = {c["id"] for c in httpx.get(f"{ghl_url}/_sim/records/contacts", timeout=10).raise_for_status().json()}
    with engine(f"sqlite:///{DEMO_HOME / 'warehouse.db'}").connect() as conn:
        linked = conn.execute(sa.select(xref.c.ghl_id).where(
            xref.c.profile == profile.name, xref.c.entity == "contact", xref.c.ghl_id.is_not(None),
            xref.c.app_id.is_not(None)).order_by(xref.c.ghl_id)).scalars()
        return next((ghl_id for ghl_id in linked if ghl_id in in_ghl), None)


def try_command(profile, ghl_url: str) -> str | None:
    """One shell command a user runs to see instant sync: a GHL edit of a linked demo contact (a
    new value each time, so each run is a change), as GHL's API takes it; None when the profile
    sends no GHL contact edit to the app."""
    contact = profile.entities.get("contact")
    if contact is None or not contact.writes_to("app") or not (contact_id := demo_contact(profile, ghl_url)):
        return None
    # the shell fills in the time: a new value, so a change, each time it is run
    field, value = (("companyName", "Edited in GHL at $(date +%T)") if "company_name" in contact.fields
                    else ("lastName", "Edited-$(date +%H%M%S)"))
    body = json.dumps({field: value}).replace('"', '\\"')  # in double quotes, for $(date) to run
    return (f"curl -sS -X PUT {shlex.quote(f'{ghl_url}/contacts/{contact_id}')} "
            f"-H 'Authorization: Bearer {GHL_TOKEN}' -H 'Version: 2021-07-28' "
            f"-H 'Content-Type: application/json' -d \"{body}\"")


def main() -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="gymdesk", help="a profile in include/profiles (file name)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("UI_PORT", "8080")),
                        help="the api-server's port on 127.0.0.1 (a free one when taken)")
    parser.add_argument("--fresh", action="store_true", help="run the demo again even when the last one is reusable")
    args = parser.parse_args()

    import httpx

    from crm_sync.console_urls import run_report_url
    from crm_sync.profile import load_profile, profile_by_name, usable_profiles

    profile = profile_by_name(args.profile)
    if args.fresh or not demo_ready(profile):
        print(f"ui: running the demo of {profile.name} first (`make demo PROFILE={profile.name}`)", flush=True)
        code = subprocess.call([sys.executable, "-m", "harness.demo", "--profile", profile.name], cwd=ROOT)
        if code:
            return code
    with ExitStack() as stack:
        ghl_url = stack.enter_context(simulator("ghl", {}, DEMO_HOME))
        app_url = (str(DEMO_HOME / "imports" / profile.name) if profile.app.kind == "csv"
                   else stack.enter_context(simulator(profile.name, {}, DEMO_HOME)))
        env = demo_env(DEMO_HOME, ghl_url, app_connection(profile, app_url))
        env.update({"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
                    # instant sync in this demo only: the receiver trusts the simulator's TEST key,
                    # and the demo's profile names the simulator's location
                    "AIRFLOW__CRM_SYNC__WEBHOOK_PUBLIC_KEY": ghl_keys.TEST_PUBLIC_KEY_SPKI_B64,
                    "CRM_SYNC_PROFILES_DIR": str(located_profiles(DEMO_HOME / "ui", profile.name))})
        others = [dag_id for p in usable_profiles()[0] if p.name != profile.name
                  for dag_id in (p.dag_id, p.fast_dag_id) if dag_id]
        services = stack.enter_context(airflow_services(env, DEMO_HOME / "ui", timeout=180, ui=True,
                                                        port=port_or_free(args.port)))
        if others:  # no connection for them here: they must not start their schedules and fail
            airflow(["dags", "pause", "--treat-dag-id-as-regex", "--yes", "^(" + "|".join(others) + ")$"],
                    services.env, DEMO_HOME / "ui" / "pause.log")
        located = load_profile(Path(services.env["CRM_SYNC_PROFILES_DIR"]) / f"{profile.name}.yaml")
        for dag_id in (located.dag_id, located.fast_dag_id):  # the batch DAG on its cron, the fast lane on webhooks
            if dag_id:
                airflow(["dags", "unpause", dag_id], services.env, DEMO_HOME / "ui" / f"unpause-{dag_id}.log")
        url = services.env["AIRFLOW__API__BASE_URL"]
        passwords = json.loads((Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated").read_text())
        report = run_report_url(profile.dag_id, newest_run(profile), url, json=True)
        # The receiver readies itself (the warehouse migrated) on its first request, which takes seconds,
        # past the simulator's 5 s delivery timeout on a busy machine: ask it now, unsigned (refused,
        # nothing stored), so that the user's first edit does not wait for it.
        if (answer := httpx.post(url + RECEIVER_PATH, content=b"{}", timeout=60)).status_code != 401:
            raise RuntimeError(f"the webhook receiver {url + RECEIVER_PATH} answered {answer.status_code} "
                               f"to an unsigned body, not 401; see {DEMO_HOME / 'ui' / 'api-server.log'}")
        httpx.post(f"{ghl_url}/_sim/webhooks", json={"url": url + RECEIVER_PATH}, timeout=10).raise_for_status()
        if located.app.webhooks and located.app.kind != "csv":
            register_target(app_url, f"{url}/crm-sync/webhooks/app/{located.name}", APP_WEBHOOK_SECRET)
        command = try_command(profile, ghl_url)
        print(f"ui: url={url} user={USER} password={passwords[USER]} report={report}", flush=True)
        print(f"try: {command}" if command else  # a shell comment: run as it stands, it does nothing
              f"try: # {profile.name} sends no GHL contact edit to the app: nothing to try", flush=True)
        while not stop.wait(1):
            services.check()
    return 0


if __name__ == "__main__":
    sys.exit(main())

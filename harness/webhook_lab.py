"""A GHL location and a gym wired to Airflow through webhooks, on this machine: GHL's and Gymdesk's
simulators (each pushing signed webhooks), an api-server serving the crm_sync receivers, and a
scheduler that runs the profile's DAG on its cron and its fast lane on the webhooks' assets.
Shared by tests/e2e/test_webhooks.py and bench/webhooks.py.

The profile is the built-in gymdesk one with ``ghl.location_id`` set; the receiver trusts the
simulator's TEST key (harness/simulators/ghl_keys.py), never GHL's.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from harness.airflow_runner import Services, airflow, airflow_services, prepare_metadata
from harness.chaos_sides import Sides, simulators
from harness.demo import (APP_KEY, APP_WEBHOOK_SECRET, GHL_TOKEN, RECEIVER_PATH, app_connection, demo_env,
                          located_profiles)
from harness.demo_data import LOCATION_ID
from harness.simulators import ghl_keys
from harness.simulators.app_push import register_target

PROFILE, DAG_ID = "gymdesk", "ghl_gymdesk"
QUIET_S = 8.0  # longer than the scheduler takes to turn a stored asset event into a run
FAST_DAG_ID = f"{DAG_ID}_fast"  # the fast lane, woken by the location's asset (the batch DAG runs on its cron)
DAG_IDS = (DAG_ID, FAST_DAG_ID)
APP_RECEIVER_PATH = f"/crm-sync/webhooks/app/{PROFILE}"


def signed(body: dict) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {"Content-Type": "application/json", "X-GHL-Signature": ghl_keys.sign(raw)}


def event(event_type: str, **fields) -> dict:
    """A body as GHL sends it, stamped now with a new webhookId."""
    return {"type": event_type, "locationId": LOCATION_ID, **fields, "webhookId": str(uuid.uuid4()),
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")}


def post_all(url: str, requests: list[tuple[bytes, dict[str, str]]], workers: int = 16, attempts: int = 3
             ) -> list[tuple[int, float, int]]:
    """POST every (body, headers) from ``workers`` threads, sending one again when it got no answer,
    as GHL redelivers; (status or 0 if never answered, seconds to the last answer, attempts) each."""
    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=workers)) as client:
        def send(request: tuple[bytes, dict[str, str]]) -> tuple[int, float, int]:
            for attempt in range(1, attempts + 1):
                started = time.perf_counter()
                try:
                    status = client.post(url, content=request[0], headers=request[1]).status_code
                    return status, time.perf_counter() - started, attempt
                except httpx.TransportError:
                    continue
            return 0, time.perf_counter() - started, attempts

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(send, requests))


@dataclass
class Lab:
    services: Services
    sides: Sides
    warehouse: sa.Engine

    def ghl(self) -> httpx.Client:
        """GHL's API as a GHL user's edits reach it."""
        return httpx.Client(base_url=self.sides.urls["ghl"], timeout=10,
                            headers={"Authorization": f"Bearer {GHL_TOKEN}", "Version": "2021-07-28"})

    def app(self) -> httpx.Client:
        """Gymdesk's API as an edit in the gym's own screens reaches it (the simulator pushes its webhook)."""
        return httpx.Client(base_url=self.sides.urls["app"], timeout=10, headers={"X-API-Key": APP_KEY})

    @property
    def receiver(self) -> str:
        return f"http://127.0.0.1:{self.services.port}{RECEIVER_PATH}"

    @property
    def app_receiver(self) -> str:
        return f"http://127.0.0.1:{self.services.port}{APP_RECEIVER_PATH}"

    def runs(self) -> list[dict]:
        """Runs of the profile's DAG and of its fast lane, oldest first."""
        rows = self.services.query("SELECT dag_id, run_id, run_type, state FROM dag_run WHERE dag_id IN (?, ?) "
                                   "ORDER BY id", DAG_ID, FAST_DAG_ID)
        return [dict(zip(("dag_id", "run_id", "run_type", "state"), row, strict=True)) for row in rows]

    def inbox(self, source: str | None = None) -> tuple[int, int]:
        """(events in the inbox, events a successful run of the profile used), of one ``source`` (ghl,
        app:gymdesk) or of both: Gymdesk also pushes the echo of every write the sync makes there."""
        only = "" if source is None else " AND i.source = :s"
        with self.warehouse.connect() as conn:
            return (conn.execute(sa.text(f"SELECT count(*) FROM webhook_inbox i WHERE 1 = 1{only}"),
                                 {"s": source}).scalar_one(),
                    conn.execute(sa.text("SELECT count(*) FROM webhook_done d JOIN webhook_inbox i "
                                         f"ON i.id = d.inbox_id WHERE d.profile = :p{only}"),
                                 {"p": PROFILE, "s": source}).scalar_one())

    def settle(self, deadline: float, events: int) -> None:
        """Wait until ``events`` events are in the inbox, all used by a successful run, and no run is left,
        for QUIET_S on end: an asset event stored a moment ago (Gymdesk's echo of a write the sync made) may
        still wake a run the scheduler has not created yet."""
        quiet_since: float | None = None
        seen = -1
        while True:
            self.services.check()
            stored, done = self.inbox()
            runs = self.runs()
            busy = [r for r in runs if r["state"] not in ("success", "failed")]
            if stored >= events and done == stored and not busy:
                if quiet_since is None or len(runs) != seen:
                    quiet_since, seen = time.monotonic(), len(runs)
                elif time.monotonic() - quiet_since >= QUIET_S:
                    return
            else:
                quiet_since = None
            if time.monotonic() > deadline:
                raise TimeoutError(f"inbox {stored}/{events} stored, {done} done; runs {runs}; "
                                   f"logs in {self.services.log_dir}")
            time.sleep(0.5)

    def used_twice(self) -> int:
        """Inbox events the extract of more than one successful run used."""
        from crm_sync.pipeline import handoff
        from crm_sync.warehouse.tables import run_log

        succeeded = {r["run_id"] for r in self.runs() if r["state"] == "success"}  # both DAGs' runs
        with self.warehouse.connect() as conn:
            logs = conn.execute(sa.select(run_log.c.run_id, run_log.c.handoff, run_log.c.stats).where(
                run_log.c.profile == PROFILE, run_log.c.step == "extract", run_log.c.side.in_(("ghl", "app")))).all()
        seen: dict[int, int] = {}
        for row in logs:
            for inbox_id in handoff.of_row(row).webhook_events.ids if row.run_id in succeeded else []:
                seen[inbox_id] = seen.get(inbox_id, 0) + 1
        return sum(1 for n in seen.values() if n > 1)


@contextmanager
def lab(home: Path, ghl_seed: dict, app_seed: dict, trigger_interval_s: float = 1.0,
        timeout: float = 300) -> Iterator[Lab]:
    """Everything running, the first (scheduled) run finished, and GHL sending webhooks to the receiver."""
    from crm_sync.profile import load_profile

    deadline = time.monotonic() + timeout
    profiles = located_profiles(home, PROFILE, only=True)
    profile = load_profile(profiles / f"{PROFILE}.yaml")
    warehouse = sa.create_engine(f"sqlite:///{home / 'warehouse.db'}")
    with simulators(ghl_seed, app_seed) as sides:
        env = {**demo_env(home, sides.urls["ghl"], app_connection(profile, sides.urls["app"])),
               "CRM_SYNC_PROFILES_DIR": str(profiles), "WAREHOUSE_URL": str(warehouse.url),
               "AIRFLOW__API__WORKERS": "1",
               # the scheduler's loop sleeps this long when idle (default 1 s): the wait between an
               # asset event and its run, and between two runs of the fast lane (docs/operations.md)
               "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
               "AIRFLOW__CRM_SYNC__WEBHOOK_PUBLIC_KEY": ghl_keys.TEST_PUBLIC_KEY_SPKI_B64,
               "AIRFLOW__CRM_SYNC__WEBHOOK_TRIGGER_INTERVAL_SECONDS": str(trigger_interval_s)}
        log_dir = home / "logs"
        prepare_metadata(env, log_dir)
        with airflow_services(env, log_dir, timeout=120, apps="core,execution", schedule=True) as services:
            for dag_id in DAG_IDS:
                airflow(["dags", "unpause", dag_id], services.env, log_dir / f"unpause-{dag_id}.log")
            # catchup is off: the scheduler makes one run, of the cron's last interval: the first sync.
            services.wait_for_runs("dag_id = ?", (DAG_ID,), deadline)
            sides.admin["ghl"].post("/webhooks", json={
                "url": f"http://127.0.0.1:{services.port}{RECEIVER_PATH}"}).raise_for_status()
            register_target(sides.urls["app"], f"http://127.0.0.1:{services.port}{APP_RECEIVER_PATH}",
                            APP_WEBHOOK_SECRET)
            try:
                yield Lab(services, sides, warehouse)
            finally:
                warehouse.dispose()

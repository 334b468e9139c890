"""Chaos for the fast lane: SIGKILL its task while a write to the other side is held, with the batch
run started beside it, then let the retry and the next runs finish; judged as `make chaos` judges.

Each trial seeds fresh GHL and Gymdesk simulators (harness.chaos.seeds), lets a batch run of the
profile (with a GHL location, so it has a fast lane) link everyone, then edits people on both sides
through their APIs and stores each edit's webhook event in the inbox, as the receivers do. One write
of one side is armed to be held (``kill_before``: before the simulator applies it; ``kill_after``:
after), the fast lane and a batch run are triggered together, and the fast lane's task is
SIGKILLed while its write is held. Airflow's retry (and, if a run still failed, further runs of
both DAGs) then finish; a last run of each follows. Both sides must hold what fault-free in-process
runs of the same seed and edits leave (harness.chaos_sides.judge: D duplicates, L lost), and every event
must be marked done. Prints one line per trial and ``N trials, D duplicates, L lost``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from harness import chaos, chaos_sides
from harness.airflow_runner import Services, airflow, airflow_services, free_port, prepare_metadata
from harness.demo import APP_KEY, GHL_TOKEN, app_connection, demo_env, located_profiles
from harness.demo_data import LOCATION_ID

PROFILE, DAG_ID, FAST_DAG_ID = chaos_sides.PROFILE, chaos_sides.DAG_ID, f"{chaos_sides.DAG_ID}_fast"
FAULTS = ("kill_before", "kill_after")
EDITS_PER_SIDE = 2
MAX_ROUNDS = 3  # rounds of (fast run, batch run) until both succeed; one more round follows


@dataclass
class Trial:
    number: int
    seed: int
    fault: str
    side: str = "app"  # whose write is held
    write: int = 0  # writes served before the held one
    met: bool = False
    killed: bool = False
    runs: list[str] = field(default_factory=list)
    duplicates: int = 0
    lost: int = 0
    pending: int = 0  # events not marked done at the end
    error: str = ""
    detail: list[str] = field(default_factory=list)


def edits(trial: Trial, people: list[str]) -> dict[str, dict[str, str]]:
    """Who is edited where: ``{"ghl": {email: company}, "app": {email: company}}``, different people."""
    rng = random.Random(trial.seed)
    chosen = rng.sample(sorted(people), 2 * EDITS_PER_SIDE)
    return {"ghl": {email: f"GHL edit {trial.number}.{n}" for n, email in enumerate(chosen[:EDITS_PER_SIDE])},
            "app": {email: f"Desk edit {trial.number}.{n}" for n, email in enumerate(chosen[EDITS_PER_SIDE:])}}


def apply_edits(sides: chaos_sides.Sides, wanted: dict[str, dict[str, str]]) -> list[tuple[str, str, str]]:
    """Make the edits through each side's API; (side, record id, event type) per edit."""
    made = []
    ghl = {(c.get("email") or "").lower(): c["id"] for c in sides.admin["ghl"].get("/records/contacts").json()}
    desk = {(m.get("email") or "").lower(): str(m["id"]) for m in sides.admin["app"].get("/records/members").json()}
    for email, company in wanted["ghl"].items():
        httpx.put(f"{sides.urls['ghl']}/contacts/{ghl[email]}", json={"companyName": company}, timeout=10,
                  headers={"Authorization": f"Bearer {GHL_TOKEN}", "Version": "2021-07-28"}).raise_for_status()
        made.append(("ghl", ghl[email], "ContactUpdate"))
    for email, company in wanted["app"].items():
        httpx.patch(f"{sides.urls['app']}/v1/members/{desk[email]}", json={"data": {"company": company}},
                    headers={"X-API-Key": APP_KEY}, timeout=10).raise_for_status()
        made.append(("app", desk[email], "member.updated"))
    return made


def store_events(warehouse: sa.Engine, made: list[tuple[str, str, str]]) -> int:
    """Each edit's webhook event, in the inbox as the GHL and app receivers store them."""
    from crm_sync.warehouse.tables import webhook_inbox

    now = datetime.now(UTC)
    with warehouse.begin() as conn:
        for side, record_id, event_type in made:
            source = "ghl" if side == "ghl" else f"app:{PROFILE}"
            conn.execute(sa.insert(webhook_inbox).values(
                webhook_id=f"{source}:{uuid.uuid4()}", location_id=LOCATION_ID, event_type=event_type,
                contact_id=record_id, object_id=record_id, event_at=now, received_at=now, routed=True,
                payload={"type": event_type}, payload_bytes=0, source=source,
                entity=None if side == "ghl" else "contact"))
    return len(made)


def reference(trial: Trial, home: Path, ghl_seed: dict, app_seed: dict) -> Counter:
    """What both sides hold after fault-free runs: a first sync, the edits, a second batch run."""
    home.mkdir(parents=True, exist_ok=True)
    with chaos._IN_PROCESS, chaos_sides.simulators(ghl_seed, app_seed) as sides:
        chaos.run_in_process(sides, home, f"reference__{trial.number}_1")
        people = [(c.get("email") or "").lower() for c in sides.admin["ghl"].get("/records/contacts").json()]
        desk = {(m.get("email") or "").lower() for m in sides.admin["app"].get("/records/members").json()}
        apply_edits(sides, edits(trial, [p for p in people if p and p in desk]))
        chaos.run_in_process(sides, home, f"reference__{trial.number}_2")
        return sides.holdings()


@dataclass
class FastLane:
    """One Airflow whose connections point at fixed ports, where each trial's simulators start in turn."""

    services: Services
    ports: tuple[int, int]
    home: Path

    @property
    def warehouse(self) -> Path:
        return Path(self.services.env["CRM_SYNC_HOME"]) / "warehouse.db"

    def trigger(self, trial: Trial, dag_id: str) -> str:
        run_id = f"fastchaos__{trial.number}_{len(trial.runs) + 1}"
        airflow(["dags", "trigger", dag_id, "--run-id", run_id], self.services.env,
                self.home / f"trigger-{run_id}.log")
        trial.runs.append(run_id)
        return run_id

    def state(self, run_id: str) -> str | None:
        rows = self.services.query("SELECT state FROM dag_run WHERE run_id = ?", run_id)
        return rows[0][0] if rows else None

    def wait(self, run_ids: list[str], trial: Trial, sides: chaos_sides.Sides, deadline: float) -> list[str]:
        """The runs' final states; the fast lane's task is SIGKILLed once the armed write is held."""
        while True:
            states = [self.state(run_id) for run_id in run_ids]
            if all(s in ("success", "failed") for s in states):
                return states
            self.services.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs {run_ids} unfinished ({states})")
            if not trial.killed and sides.faults_met(trial.side):
                trial.met = True
                if chaos.kill_task(self.services, run_ids[0], "sync"):
                    trial.killed = True
            time.sleep(0.05 if not trial.killed else 0.5)

    def run_trial(self, trial: Trial, now: datetime) -> None:
        ghl_seed, app_seed = chaos.seeds(trial.seed, now)
        expected = reference(trial, self.home / f"trial-{trial.number}" / "reference", ghl_seed, app_seed)
        deadline = time.monotonic() + chaos.TRIAL_TIMEOUT_S * 2
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.warehouse}{suffix}").unlink(missing_ok=True)
        with chaos_sides.simulators(ghl_seed, app_seed, self.ports) as sides:
            if self.wait([self.trigger(trial, DAG_ID)], trial, sides, deadline) != ["success"]:
                raise RuntimeError("the first sync failed")
            people = [(c.get("email") or "").lower() for c in sides.admin["ghl"].get("/records/contacts").json()]
            desk = {(m.get("email") or "").lower() for m in sides.admin["app"].get("/records/members").json()}
            warehouse = sa.create_engine(f"sqlite:///{self.warehouse}")
            try:
                events = store_events(warehouse, apply_edits(sides, edits(trial, [p for p in people if p in desk])))
                # a GHL edit is written to the app and an app edit to GHL: EDITS_PER_SIDE writes each
                sides.arm(trial.side, {"writes": {"skip": trial.write, **(
                    {"timeouts": {"count": 1, "hold_s": chaos.HOLD_S}} if trial.fault == "kill_before"
                    else {"late": {"count": 1, "hold_s": chaos.HOLD_S}})}})
                states: list[str] = []
                for _ in range(MAX_ROUNDS):  # the fast lane and the batch run side by side
                    states = self.wait([self.trigger(trial, FAST_DAG_ID), self.trigger(trial, DAG_ID)],
                                       trial, sides, deadline)
                    if states == ["success", "success"]:
                        break
                states = self.wait([self.trigger(trial, FAST_DAG_ID), self.trigger(trial, DAG_ID)],
                                   trial, sides, deadline)
                if states != ["success", "success"]:
                    trial.error = f"the last runs ended {states}"
                with warehouse.connect() as conn:
                    done = conn.execute(sa.text("SELECT count(*) FROM webhook_done WHERE profile = :p"),
                                        {"p": PROFILE}).scalar_one()
                trial.pending = events - done
            finally:
                warehouse.dispose()
            trial.duplicates, trial.lost, trial.detail = chaos_sides.judge(expected, sides.holdings())


@contextmanager
def fast_lane(home: Path):
    from crm_sync.profile import load_profile

    ports = (free_port(), free_port())
    profiles = located_profiles(home, PROFILE, only=True)
    profile = load_profile(profiles / f"{PROFILE}.yaml")
    env = {**demo_env(home, f"http://127.0.0.1:{ports[0]}", app_connection(profile, f"http://127.0.0.1:{ports[1]}")),
           "CRM_SYNC_PROFILES_DIR": str(profiles)}
    prepare_metadata(env, home, timeout=300)
    with airflow_services(env, home / "services") as services:
        for dag_id in (DAG_ID, FAST_DAG_ID):
            airflow(["dags", "unpause", dag_id], services.env, home / f"unpause-{dag_id}.log")
        yield FastLane(services, ports, home)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--home", type=Path, default=chaos.ROOT / ".chaos-fast")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    chaos.set_home(home)  # the reference runs' step log goes there
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    seed = random.randrange(2**32) if args.seed is None else args.seed
    rng = random.Random(seed)
    now = datetime.now(UTC)
    chaos.say(f"fast-lane chaos: {args.trials} trials, seed {seed}, logs in {home}")
    done: list[Trial] = []
    with fast_lane(home / "lane") as lane:
        for number in range(1, args.trials + 1):
            trial = Trial(number, rng.getrandbits(32), FAULTS[(number - 1) % len(FAULTS)],
                          side=rng.choice(("ghl", "app")), write=rng.randrange(EDITS_PER_SIDE))
            begun = time.monotonic()
            try:
                lane.run_trial(trial, now)
            except Exception as exc:  # noqa: BLE001 - reported, and fails the run
                trial.error = f"{type(exc).__name__}: {exc}"
            done.append(trial)
            chaos.say(f"trial {number}: seed {trial.seed} {trial.fault} at {trial.side} write {trial.write + 1} "
                      f"met={'yes' if trial.met else 'no'} killed={'yes' if trial.killed else 'no'} "
                      f"runs={len(trial.runs)} pending={trial.pending} duplicates={trial.duplicates} "
                      f"lost={trial.lost} ({time.monotonic() - begun:.0f} s)"
                      + (f" ERROR {trial.error}" if trial.error else ""))
            for line in trial.detail:
                chaos.say(f"    {line}")
    duplicates, lost = sum(t.duplicates for t in done), sum(t.lost for t in done)
    chaos.say(f"{len(done)} trials, {duplicates} duplicates, {lost} lost")
    clean = all(not t.error and t.killed and not t.pending for t in done)
    return 0 if clean and duplicates == lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""`make chaos`: crash-safety trials of the exactly-once load, judged on what both sides end up holding.

Each trial seeds fresh GHL and Gymdesk simulators (the default profile) from a random seed with
people that need creates and updates on both sides, plus tasks, notes and appointments, and
arms one fault at a random write of one side (the simulator counts writes and meets the k-th):

- ``kill_before`` / ``kill_after``: the write is held before / after the simulator applies it,
  and the harness SIGKILLs the process running the load task meanwhile;
- ``drop`` / ``lost``: the connection is dropped before / after the write is applied;
- ``5xx``: the simulator answers a server error without applying the write.

Airflow (a private scheduler and api-server per lane) runs the DAG: the task's retries
(retries=2) and, if the run still failed, further runs, until a run succeeds; one more run
follows it. Both simulators' records are then compared with those of a fault-free reference
(the same steps run in this process on separate simulators from the same seed, until nothing
is left to write), by natural keys (contact email; the owner's email for children), ignoring
generated ids and timestamps: D counts records held more often than expected, L expected records
missing or holding other values. Prints one line per trial, then ``N trials, D duplicates, L lost``;
exits 1 unless D == L == 0 and every trial ran. Traffic goes to localhost only; each trial and the
whole run are bounded in time, and every process started is stopped, whatever happens.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import shutil
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


from harness.airflow_runner import Services, airflow, airflow_services, free_port, prepare_metadata
from harness.demo import ROOT, app_connection, demo_env
from harness.demo_apps import app_seed, ghl_children
from harness.chaos_sides import DAG_ID, PROFILE, Sides, judge, simulators
from harness.demo_data import build

HOME = ROOT / ".chaos"
FAULTS = ("kill_before", "kill_after", "drop", "lost", "5xx")
TRIAL_TIMEOUT_S = 300
MAX_RUNS = 4  # runs of one trial: until one succeeds, then one more
HOLD_S = 35  # a held write outlives the kill that follows it (and the client's 30 s timeout)
_OUT = threading.Lock()  # one trial line at a time
_IN_PROCESS = threading.Lock()  # reference runs share this process's environment and stdout


class Stopped(Exception):
    """The run is stopping (SIGTERM, Ctrl-C or its deadline)."""


@dataclass
class Trial:
    number: int
    seed: int
    fault: str
    count: int = 1  # consecutive writes that meet it (drop, lost, 5xx)
    status: int = 500
    side: str = "ghl"  # "ghl" or "app": whose write meets the fault
    write: int = 0  # writes served before the fault
    met: bool = False
    runs: list[str] = field(default_factory=list)
    duplicates: int = 0
    lost: int = 0
    error: str = ""
    detail: list[str] = field(default_factory=list)

    def describe(self) -> str:
        extra = f" x{self.count}" if self.fault in ("drop", "lost", "5xx") else ""
        extra += f" {self.status}" if self.fault == "5xx" else ""
        return f"{self.fault}{extra} at {self.side} write {self.write + 1}"

    def write_faults(self) -> dict[str, Any]:
        """The simulator's ``writes`` fault for this trial (POST /_sim/faults)."""
        faults = {"kill_before": {"timeouts": {"count": 1, "hold_s": HOLD_S}},
                  "kill_after": {"late": {"count": 1, "hold_s": HOLD_S}},
                  "drop": {"drops": self.count}, "lost": {"lost": self.count},
                  "5xx": {"server_errors": {"count": self.count, "status": self.status}}}[self.fault]
        return {"writes": {"skip": self.write, **faults}}


def plan(number: int, rng: random.Random) -> Trial:
    """Every fault once in the first trials, then at random."""
    fault = FAULTS[(number - 1) % len(FAULTS)] if number <= len(FAULTS) else rng.choice(FAULTS)
    return Trial(number, rng.getrandbits(32), fault, count=rng.randint(1, 3), status=rng.choice((500, 502, 503)))


def seeds(seed: int, now: datetime) -> tuple[dict, dict]:
    """GHL's and Gymdesk's seeds: 16 to 24 people in the demo's mix (creates, updates and conflicts
    on both sides) with tasks, notes and appointments. The demo's bad and ambiguous rows are left
    out: they are never written, and with so few people they would trip the quality threshold."""
    from crm_sync.profile import profile_by_name

    profile = profile_by_name(PROFILE)
    data = build(now.date(), people=random.Random(seed).randint(16, 24), seed=seed)
    good = {person["email"] for person in data.expected}
    data.ghl_contacts = [c for c in data.ghl_contacts if (c.get("email") or "").lower() in good]
    data.gymdesk_members = [m for m in data.gymdesk_members if m["id"] and m["email"] in good]
    data.ghl_children = ghl_children(profile, data, now)
    ghl_seed, _ = data.seeds()
    return ghl_seed, app_seed(profile, data, now)


_STEP_LOG = None


@contextmanager
def quiet() -> Iterator[None]:
    """What the steps print and log in this process goes to one file that stays open (loggers
    configured meanwhile keep writing to it)."""
    global _STEP_LOG
    if _STEP_LOG is None or _STEP_LOG.closed:
        _STEP_LOG = (HOME / "reference-steps.log").open("a")
    with redirect_stdout(_STEP_LOG), redirect_stderr(_STEP_LOG):
        yield


def run_in_process(sides: Sides, home: Path, run_id: str) -> None:
    """One run of every step, in DAG order, against ``sides`` with its warehouse in ``home``."""
    from importlib import import_module

    from crm_sync.pipeline.context import RunContext
    from crm_sync.profile import profile_by_name
    from crm_sync.warehouse.db import engine

    profile = profile_by_name(PROFILE)
    env = demo_env(home, sides.urls["ghl"], app_connection(profile, sides.urls["app"]))
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("AIRFLOW_CONN_", "CRM_SYNC_HOME"))})
    os.environ["WAREHOUSE_URL"] = f"sqlite:///{home / 'warehouse.db'}"
    engine.cache_clear()
    try:
        with quiet():
            ctx = RunContext(profile, run_id, "manual")
            engine()
            for step, args in (("extract", ("ghl",)), ("extract", ("app",)), ("stage", ()), ("validate", ()),
                               ("reconcile", ()), ("load", ()), ("report", ())):
                getattr(import_module(f"crm_sync.pipeline.{step}"), step)(ctx, *args)
    finally:
        engine().dispose()
        engine.cache_clear()
        os.environ.clear()
        os.environ.update(saved)


def reference(trial: Trial, ghl_seed: dict, app_seed_: dict) -> tuple[Counter, dict[str, int]]:
    """What both sides must hold after fault-free runs, and how many writes each side received in
    the first run (where the fault is placed)."""
    home = HOME / f"trial-{trial.number}" / "reference"
    home.mkdir(parents=True, exist_ok=True)
    with _IN_PROCESS, simulators(ghl_seed, app_seed_) as sides:
        run_in_process(sides, home, f"reference__{trial.number}_1")
        writes = {side: sides.writes(side) for side in ("ghl", "app")}
        run_in_process(sides, home, f"reference__{trial.number}_2")  # as a trial does: a faulted run, then another
        return sides.holdings(), writes


def _kill_load(services: Services, run_id: str) -> bool:
    return kill_task(services, run_id, "load")


def kill_task(services: Services, run_id: str, task_id: str) -> bool:
    """SIGKILL the process running ``task_id`` of ``run_id`` (its title names the task instance)."""
    rows = services.query("SELECT id FROM task_instance WHERE run_id = ? AND task_id = ? "
                          "AND state = 'running'", run_id, task_id)
    for ti_id in (str(uuid.UUID(row[0])) for row in rows):
        for pid in (int(entry) for entry in os.listdir("/proc") if entry.isdigit()):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if f"airflow worker -- {ti_id}" in title:
                os.kill(pid, signal.SIGKILL)
                return True
    return False


@dataclass
class Lane:
    """One Airflow (metadata database, api-server, scheduler) whose connections point at fixed
    localhost ports, where each trial's simulators are started in turn."""

    number: int
    services: Services
    ports: tuple[int, int]
    stop: threading.Event

    @property
    def warehouse(self) -> Path:
        return Path(self.services.env["CRM_SYNC_HOME"]) / "warehouse.db"

    def trigger(self, trial: Trial) -> str:
        run_id = f"chaos__{trial.number}_{len(trial.runs) + 1}"
        airflow(["dags", "trigger", DAG_ID, "--run-id", run_id], self.services.env,
                HOME / f"trial-{trial.number}" / f"trigger-{run_id}.log")
        trial.runs.append(run_id)
        return run_id

    def wait(self, run_id: str, trial: Trial, sides: Sides, deadline: float) -> str:
        """The run's final state; for a kill fault, SIGKILL its load task once the armed write is held."""
        killing = trial.fault.startswith("kill") and not trial.met
        while True:
            state = self.services.query("SELECT state FROM dag_run WHERE run_id = ?", run_id)
            if state and state[0][0] in ("success", "failed"):
                return state[0][0]
            self.services.check()
            if self.stop.is_set():
                raise Stopped()
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} unfinished after the trial's {TRIAL_TIMEOUT_S} s")
            if killing and sides.faults_met(trial.side) and _kill_load(self.services, run_id):
                trial.met, killing = True, False
            time.sleep(0.05 if killing else 0.5)

    def run_trial(self, trial: Trial, now: datetime) -> None:
        ghl_seed, app_seed_ = seeds(trial.seed, now)
        expected, writes = reference(trial, ghl_seed, app_seed_)
        rng = random.Random(trial.seed)
        trial.side = rng.choice([side for side in ("ghl", "app") if writes[side]])
        trial.write = rng.randrange(writes[trial.side])
        deadline = time.monotonic() + TRIAL_TIMEOUT_S
        for suffix in ("", "-wal", "-shm"):  # a fresh warehouse for each trial
            Path(f"{self.warehouse}{suffix}").unlink(missing_ok=True)
        with simulators(ghl_seed, app_seed_, self.ports) as sides:
            sides.arm(trial.side, trial.write_faults())
            # The DAG runs one run at a time: the next run queues behind the faulted one.
            faulted, later = self.trigger(trial), self.trigger(trial)
            state = self.wait(faulted, trial, sides, deadline)
            trial.met = trial.met or bool(sides.faults_met(trial.side))
            later_state = self.wait(later, trial, sides, deadline)
            while state != "success" and len(trial.runs) < MAX_RUNS:  # the failed run was run again
                state, later_state = later_state, self.wait(self.trigger(trial), trial, sides, deadline)
            if later_state != "success":
                trial.error = f"runs {trial.runs} did not end with a successful run"
            trial.duplicates, trial.lost, trial.detail = judge(expected, sides.holdings())


@contextmanager
def lane(number: int, stop: threading.Event) -> Iterator[Lane]:
    from crm_sync.profile import profile_by_name

    home = HOME / f"lane-{number}"
    ports = (free_port(), free_port())
    env = demo_env(home, f"http://127.0.0.1:{ports[0]}",
                   app_connection(profile_by_name(PROFILE), f"http://127.0.0.1:{ports[1]}"))
    prepare_metadata(env, home, timeout=300)
    with airflow_services(env, home / "services") as services:
        airflow(["dags", "unpause", DAG_ID], services.env, home / "unpause.log")
        yield Lane(number, services, ports, stop)


def say(line: str) -> None:
    with _OUT:
        print(line, file=sys.__stdout__, flush=True)


def work(number: int, trials: queue.Queue, done: list[Trial], stop: threading.Event, now: datetime) -> None:
    """One lane: take trials until none is left or the run stops."""
    with lane(number, stop) as this:
        while not stop.is_set():
            try:
                trial = trials.get_nowait()
            except queue.Empty:
                return
            begun = time.monotonic()
            try:
                this.run_trial(trial, now)
            except Stopped:
                return
            except Exception as exc:  # a trial that could not finish is reported, and fails the run
                trial.error = f"{type(exc).__name__}: {exc}"
            done.append(trial)
            say(f"trial {trial.number:>2}: seed {trial.seed:<10} {trial.describe():<28} "
                f"met={'yes' if trial.met else 'no'} runs={len(trial.runs)} duplicates={trial.duplicates} "
                f"lost={trial.lost} ({time.monotonic() - begun:.0f} s)"
                + (f" ERROR {trial.error}" if trial.error else ""))
            for line in trial.detail:
                say(f"    {line}")


def set_home(home: Path) -> None:
    global HOME
    HOME = home.resolve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None, help="seed of the whole run (default: random)")
    parser.add_argument("--lanes", type=int, default=2, help="trials run side by side, each lane its own Airflow")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds the whole run may take")
    parser.add_argument("--home", type=Path, default=HOME, help="where logs and Airflow homes go (emptied first)")
    args = parser.parse_args(argv)
    set_home(args.home)
    seed = random.randrange(2**32) if args.seed is None else args.seed
    rng = random.Random(seed)
    now, started = datetime.now(UTC), time.monotonic()
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    say(f"chaos: {args.trials} trials in {args.lanes} lanes, seed {seed}, logs in {HOME}")
    trials: queue.Queue = queue.Queue()
    for number in range(1, args.trials + 1):
        trials.put(plan(number, rng))
    done: list[Trial] = []
    stop = threading.Event()
    errors: list[str] = []

    def lane_thread(number: int) -> None:
        try:
            work(number, trials, done, stop, now)
        except Exception as exc:
            errors.append(f"lane {number}: {type(exc).__name__}: {exc}")
            stop.set()

    threads = [threading.Thread(target=lane_thread, args=(n,), name=f"lane-{n}") for n in range(1, args.lanes + 1)]
    # SIGTERM unwinds like Ctrl-C: the lanes stop their trials and every process they started.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads) and not stop.is_set():
            if time.monotonic() - started > args.timeout:
                errors.append(f"the run exceeded its {args.timeout:.0f} s")
                stop.set()
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop.set()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    for error in errors:
        say(f"chaos: {error}")
    failed = [t.number for t in done if t.error]
    duplicates, lost = sum(t.duplicates for t in done), sum(t.lost for t in done)
    say(f"chaos: {time.monotonic() - started:.0f} s")
    say(f"{len(done)} trials, {duplicates} duplicates, {lost} lost")
    complete = len(done) == args.trials and not failed and not errors
    return 0 if complete and duplicates == lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Drive Airflow from a script: CLI calls, and a backfill executed to completion, headless.

`airflow backfill create` only queues runs; the scheduler executes them and its task
processes report to the Execution API of an api-server. So a backfill here starts a private
api-server (execution API only, free localhost port) and a scheduler (LocalExecutor),
serialises the DAG, creates the backfill, waits until every run has finished, and stops
every process it started, including the task processes, whatever happens.
Needs the metadata database migrated (`airflow db migrate` done): the embedded SQLite by
default; with ``AIRFLOW__CORE__EXECUTOR=CeleryExecutor`` in the environment (see
``celery_stack``) PostgreSQL, and a dag-processor and two Celery workers start as well.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

TERMINAL = ("success", "failed")
CELERY_WORKERS = 2
RUN_COLUMNS = ("run_id", "state", "data_interval_start", "data_interval_end", "run_type")


def run_logged(command: list[str], env: dict[str, str], log: Path, timeout: float = 600) -> None:
    """Run one command, its output to ``log``; raise with the log's tail if it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        code = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=timeout).returncode
    if code:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(command)} failed with exit {code} (log: {log}):\n{tail}")


def airflow(args: list[str], env: dict[str, str], log: Path, timeout: float = 600) -> None:
    run_logged(["airflow", *args], env, log, timeout)


def prepare_metadata(env: dict[str, str], log_dir: Path, timeout: float = 600) -> None:
    """Airflow's metadata database at the newest migration, with each GHL location's pool (a load
    task waits forever for a pool that does not exist)."""
    airflow(["db", "migrate"], env, log_dir / "airflow-db-migrate.log", timeout)
    run_logged([sys.executable, "-m", "crm_sync.cli", "pools"], env, log_dir / "pools.log", timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _query(db: Path | str, sql: str, *params) -> list[tuple]:
    """``sql`` with ``?`` parameters on the metadata database: a SQLite file, or a PostgreSQL URL."""
    if isinstance(db, str):
        import sqlalchemy as sa

        eng = sa.create_engine(db, poolclass=sa.pool.NullPool)
        with eng.begin() as conn:
            result = conn.exec_driver_sql(sql.replace("?", "%s"), params)
            return result.fetchall() if result.returns_rows else []
    # A short read-only connection per call, so we never hold a lock the scheduler needs.
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        return conn.execute(sql, params).fetchall()


def metadata_db(env: dict[str, str]) -> Path | str:
    """Where the metadata lives: PostgreSQL's URL when configured, else the SQLite file in AIRFLOW_HOME."""
    return env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or Path(env["AIRFLOW_HOME"]) / "airflow.db"


def is_celery(env: dict[str, str]) -> bool:
    return env.get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor"


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/execution/health", timeout=10) as response:
            return response.status == 200
    except OSError:
        return False


def _signal_session(sid: int, sig: int) -> None:
    """Signal every process of a session: task runners leave the daemon's process group, not its session."""
    for pid in (int(entry) for entry in os.listdir("/proc") if entry.isdigit()):
        try:
            if os.getsid(pid) == sid:
                os.kill(pid, sig)
        except OSError:
            pass


def _stop(processes: list[subprocess.Popen], grace: float) -> None:
    for process in reversed(processes):  # the scheduler first, while the API can still take task reports
        for step in (process.terminate, partial(_signal_session, process.pid, signal.SIGTERM),
                     partial(_signal_session, process.pid, signal.SIGKILL)):
            step()
            try:
                process.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        _signal_session(process.pid, signal.SIGKILL)


@dataclass
class Services:
    """A running api-server and scheduler, and the environment CLI calls beside them must use."""

    env: dict[str, str]
    processes: list[subprocess.Popen]
    log_dir: Path
    port: int

    @property
    def db(self) -> Path | str:
        return metadata_db(self.env)

    def query(self, sql: str, *params) -> list[tuple]:
        return _query(self.db, sql, *params)

    def check(self) -> None:
        if dead := [p.args[1] for p in self.processes if p.poll() is not None]:
            raise RuntimeError(f"{dead} exited early; logs in {self.log_dir}")

    def wait_for_runs(self, where: str, params: tuple, deadline: float) -> list[dict]:
        """The DAG runs matching ``where``, once every one has finished; TimeoutError past ``deadline``."""
        select = f"SELECT {', '.join(RUN_COLUMNS)} FROM dag_run WHERE {where} ORDER BY logical_date, run_after"
        rows = self.query(select, *params)
        while not rows or not all(row[1] in TERMINAL for row in rows):
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG runs unfinished at the deadline: {rows}")
            time.sleep(0.5)
            rows = self.query(select, *params)
        return [dict(zip(RUN_COLUMNS, row, strict=True)) for row in rows]


@contextmanager
def airflow_services(env: dict[str, str], log_dir: Path, timeout: float = 120, *, ui: bool = False,
                     port: int | None = None, apps: str = "execution", schedule: bool = False) -> Iterator[Services]:
    """A private api-server (execution API; ``apps="core,execution"`` adds the REST API and the plugins'
    apps) and scheduler (LocalExecutor) on a free localhost port; stops every process they started,
    task processes included, whatever happens. ``schedule``: the scheduler also creates runs from the
    unpaused DAGs' schedules (cron and assets), not only the runs asked for. With ``ui`` the
    api-server also serves the UI (all apps, one worker, on 127.0.0.1), a dag-processor and a
    triggerer run (the UI's home page shows each one's health) and the scheduler follows the
    schedules: what `make ui` keeps up. With the CeleryExecutor (``env``
    names it: harness.celery_stack) also a dag-processor and two Celery workers, and the whole
    api-server, whose UI data the tests read."""
    deadline = time.monotonic() + timeout
    port = port or free_port()
    celery = is_celery(env)

    env = {**env,
           "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if celery else "LocalExecutor",
           "AIRFLOW__CORE__PARALLELISM": "4",  # the default 32 pre-forks 32 idle workers
           "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
           "AIRFLOW__API__PORT": str(port),
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
           "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),  # the api-server and tasks share it
           # by default only the runs asked for, no scheduled one; a DAG is unpaused by whoever runs
           # it (run_backfill, make ui, the webhook lab), never all of them at creation
           "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(ui or schedule)}
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        with (log_dir / f"{name}.log").open("wb") as out:
            processes.append(subprocess.Popen(["airflow", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, start_new_session=True))

    finished = False
    try:
        start("api-server", "api-server", "-H", "127.0.0.1", "-p", str(port),
              *(["--apps", "all", "--workers", "1"] if ui else ["--apps", "all" if celery else apps]))
        start("scheduler", "scheduler", "--skip-serve-logs")
        if ui or celery:
            start("dag-processor", "dag-processor")
        if ui:
            start("triggerer", "triggerer", "--skip-serve-logs")
        if celery:
            for n in range(1, CELERY_WORKERS + 1):
                start(f"celery-worker-{n}", "celery", "worker", "--celery-hostname", f"worker{n}@%h",
                      "--skip-serve-logs", "--without-gossip", "--without-mingle")
        airflow(["dags", "reserialize"], env, log_dir / "reserialize.log")
        while not _healthy(port):
            if processes[0].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the api-server did not come up; see {log_dir / 'api-server.log'}")
            time.sleep(0.2)
        services = Services(env, processes, log_dir, port)
        yield services
        services.check()
        finished = True
    finally:
        _stop(processes, grace=10 if finished else 3)


def _create_backfill(services: Services, dag_id: str, from_date: str, to_date: str, log_dir: Path,
                     attempts: int = 3) -> None:
    """``airflow backfill create``, asked again when SQLite was locked by the scheduler meanwhile:
    Airflow then removes the half-made backfill itself, so that a retry can make it whole."""
    for attempt in range(1, attempts + 1):
        try:
            airflow(["backfill", "create", "--dag-id", dag_id, "--from-date", from_date, "--to-date", to_date,
                     "--max-active-runs", "1"],  # one run at a time, in order, like the DAG itself
                    services.env, log_dir / f"backfill-create-{attempt}.log")
            return
        except RuntimeError as exc:
            left = services.query("SELECT id FROM backfill WHERE dag_id = ? AND completed_at IS NULL", dag_id)
            if attempt == attempts or "database is locked" not in str(exc) or left:
                raise
            time.sleep(2 * attempt)


def run_backfill(dag_id: str, from_date: str, to_date: str, env: dict[str, str], log_dir: Path,
                 timeout: float = 900, then_trigger: bool = False) -> list[dict]:
    """Backfill [from_date, to_date] (daily intervals, both ends' logical dates included); return the runs.
    ``then_trigger``: afterwards one manual run through the same executor, returned last."""
    deadline = time.monotonic() + timeout
    db = metadata_db(env)
    with airflow_services(env, log_dir) as services:
        airflow(["dags", "unpause", dag_id], services.env, log_dir / "unpause.log")
        _create_backfill(services, dag_id, from_date, to_date, log_dir)
        backfill_id = _query(db, "SELECT max(id) FROM backfill WHERE dag_id = ?", dag_id)[0][0]
        rows = services.wait_for_runs("backfill_id = ?", (backfill_id,), deadline)
        if then_trigger:
            airflow(["dags", "trigger", dag_id], services.env, log_dir / "trigger.log")
            rows += services.wait_for_runs("dag_id = ? AND run_type = ?", (dag_id, "manual"), deadline)
    # The scheduler marks a backfill complete only every 30 s; do it now so a later one may start.
    completed = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(db, str):
        _query(db, "UPDATE backfill SET completed_at = ? WHERE id = ? AND completed_at IS NULL", completed, backfill_id)
        return rows
    with closing(sqlite3.connect(db, timeout=30)) as conn, conn:
        conn.execute("UPDATE backfill SET completed_at = ? WHERE id = ? AND completed_at IS NULL",
                     (completed, backfill_id))
    return rows



"""One reconcile or load of a profile at a time, whatever Airflow's run limits say.

max_active_runs=1 keeps a DAG's scheduled runs apart, but a backfill started with
``--max-active-runs 10`` does not, and two loads of one profile must never interleave: each
takes rows left "sending" by a crash back to pending, so it would resend the other's rows in
flight. The lock dies with its holder (a PostgreSQL advisory lock belongs to its session, an
flock to its open file), so a task killed with SIGKILL never leaves it taken.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from crm_sync.paths import data_home


class ProfileBusy(RuntimeError):
    """Another run of the profile holds its lock; Airflow retries the task later."""


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"crm_sync:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def profile_lock(eng: sa.Engine, profile: str, step: str, wait_s: float = 120.0) -> Iterator[None]:
    """Hold the profile's lock for ``step``; wait up to ``wait_s`` for it, then raise ProfileBusy."""
    with named_lock(eng, profile, wait_s,
                    ProfileBusy(f"another run of profile {profile} holds its lock (stage, reconcile or load); "
                                f"{step} will be retried")):
        yield


@contextmanager
def named_lock(eng: sa.Engine, name: str, wait_s: float, busy: Exception) -> Iterator[None]:
    """Hold the warehouse-wide lock called ``name`` (every process and worker on this warehouse
    shares it); wait up to ``wait_s`` for it, then raise ``busy``."""
    deadline = time.monotonic() + wait_s
    if eng.dialect.name == "postgresql":
        with eng.connect() as conn:
            while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(name)}).scalar_one():
                conn.rollback()
                _wait_or_give_up(deadline, busy)
            conn.commit()  # the lock is the session's: no transaction stays open while the step runs
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _key(name)})
                conn.commit()
        return
    with _lock_file(eng, name).open("w") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                _wait_or_give_up(deadline, busy)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_file(eng: sa.Engine, name: str) -> Path:
    """Beside the SQLite file: every process that opens that warehouse sees the same lock."""
    if eng.dialect.name == "sqlite" and eng.url.database not in (None, "", ":memory:"):
        return Path(eng.url.database).with_name(f"{Path(eng.url.database).name}.{name}.lock")
    return data_home() / f"{name}.lock"


def _wait_or_give_up(deadline: float, busy: Exception) -> None:
    if time.monotonic() >= deadline:
        raise busy
    time.sleep(0.1)

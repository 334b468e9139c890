"""The CeleryExecutor on this machine's own services, for `make demo EXECUTOR=celery` and tests.

Airflow's metadata and the warehouse each get a fresh PostgreSQL database (127.0.0.1:5432),
and the Celery broker a Redis database number nobody else uses (127.0.0.1:6379), claimed with
a key so two runs at once never share one. Everything is dropped and flushed on the way out.
The processes themselves (api-server, scheduler, dag-processor, workers) are started by
``airflow_runner.airflow_services``; ``session_cpu_seconds`` is what each of them cost (bench/agency.py).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_SERVER = os.environ.get("CRM_SYNC_PG_SERVER", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("CRM_SYNC_REDIS_SERVER", "redis://127.0.0.1:6379")
CLAIM_KEY = "crm_sync:claimed_by"
WORKERS = 2


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server; dropped (connections and all) afterwards."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def redis_database() -> Iterator[str]:
    """The URL of an empty Redis database number, claimed for this run; flushed afterwards."""
    import redis

    owner = uuid.uuid4().hex
    for number in range(15, 0, -1):  # 0 is everybody's default: never ours
        client = redis.Redis.from_url(f"{REDIS_SERVER}/{number}")
        if client.dbsize() == 0 and client.set(CLAIM_KEY, owner, nx=True):
            break
        client.close()
    else:
        raise RuntimeError(f"no free Redis database number on {REDIS_SERVER} (1..15 are all in use)")
    try:
        yield f"{REDIS_SERVER}/{number}"
    finally:
        if client.get(CLAIM_KEY) == owner.encode():
            client.flushdb()
        client.close()


@contextmanager
def celery_services_env() -> Iterator[dict[str, str]]:
    """The environment of a CeleryExecutor run on fresh databases: metadata, warehouse, broker."""
    with postgres_database("crm_sync_airflow") as metadata, postgres_database("crm_sync_warehouse") as warehouse, \
            redis_database() as broker:
        yield {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata.replace("+psycopg2", ""),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "WAREHOUSE_URL": warehouse,
        }


def write_location_profiles(directory: Path, names: list[str], keys: list[str], extra: str = "") -> None:
    """Copies of built-in profiles, each naming the GHL locations ``keys`` (connections ghl_<key>,
    app connections <name>_<key>): one DAG per profile and location. ``extra``: more top-level YAML
    (``dag_shape: single_task``)."""
    from crm_sync.paths import PROFILES_DIR

    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        locations = "".join(f"  - {{key: {key}, conn_id: ghl_{key}, app_conn_id: {name}_{key}}}\n" for key in keys)
        (directory / f"{name}.yaml").write_text((PROFILES_DIR / f"{name}.yaml").read_text() + "\nlocations:\n"
                                                + locations + extra)


def location_connections(ghl_url: str, tokens: dict[str, tuple[str, str]], app_urls: dict[tuple[str, str], str],
                         api_key: str) -> dict[str, str]:
    """Airflow connections (environment variables) of every location: ``tokens`` maps a location key
    to (Private Integration Token, location id); ``app_urls`` (app name, key) to its simulator."""
    env = {f"AIRFLOW_CONN_GHL_{key.upper()}": json.dumps({"conn_type": "ghl", "host": ghl_url, "password": token,
                                                         "extra": {"location_id": location}})
           for key, (token, location) in tokens.items()}
    env.update({f"AIRFLOW_CONN_{name.upper()}_{key.upper()}": json.dumps(
        {"conn_type": "crm_sync_app", "host": url, "password": api_key}) for (name, key), url in app_urls.items()})
    return env


def session_cpu_seconds(leader: int) -> float:
    """CPU seconds (user and system) of every process in the session ``leader`` started, with the children
    they reaped: a service's whole cost (a Celery worker's pool and the task processes it forked)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in (int(entry) for entry in os.listdir("/proc") if entry.isdigit()):
        try:
            if os.getsid(pid) != leader:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile: its time is in its parent's reaped children now
            continue
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / tick

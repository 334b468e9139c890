"""The warehouse connection: WAREHOUSE_URL, else the Airflow connection, else embedded SQLite.

Looked up only when a task runs, never at DAG parse time. Every entry point calls
``engine()``, which brings the schema to the newest migration once per process.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from crm_sync.paths import data_home

log = logging.getLogger(__name__)
CONN_ID = "warehouse_default"
MIGRATIONS = Path(__file__).with_name("migrations")


def warehouse_url() -> str:
    if url := os.environ.get("WAREHOUSE_URL"):
        return url
    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException, AirflowRuntimeError
    except ImportError:  # used outside Airflow (tests of the warehouse, benches)
        return f"sqlite:///{data_home() / 'warehouse.db'}"
    try:
        return sqlalchemy_url(BaseHook.get_connection(CONN_ID).get_uri())
    except (AirflowNotFoundException, AirflowRuntimeError):
        pass
    return f"sqlite:///{data_home() / 'warehouse.db'}"


def sqlalchemy_url(uri: str) -> str:
    """Airflow writes PostgreSQL connections as ``postgres://``; SQLAlchemy 2 wants ``postgresql://``."""
    scheme, sep, rest = uri.partition("://")
    if scheme in ("postgres", "postgresql"):
        scheme = "postgresql+psycopg2"
    return f"{scheme}{sep}{rest}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the two extract tasks write while others read; the busy timeout queues writers.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        eng = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(eng, "connect", _sqlite_pragmas)
        return eng
    return sa.create_engine(url, pool_pre_ping=True)


def migrate(eng: sa.Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is there already)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with eng.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


@functools.cache
def engine(url: str | None = None) -> sa.Engine:
    eng = create(url or warehouse_url())
    migrate(eng)
    log.info("warehouse ready at %s", eng.url.render_as_string(hide_password=True))
    return eng

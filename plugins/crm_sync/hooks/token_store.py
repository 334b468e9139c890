"""Where OAuth tokens live: the store protocols ``hooks.oauth`` refreshes through, an Airflow
Variable (the old home of a refresh token), and the warehouse, shared by every task, process and
Celery worker.

A GHL refresh token works once. Workers that each refreshed on their own would race: the
first wins, the others present a dead token (invalid_grant) and the install is lost. So a
refresh happens under the warehouse's lock (a PostgreSQL advisory lock, or an flock beside the
SQLite file), and the access token it yields is kept, with its expiry, for every other task to
reuse until shortly before it expires. Both tokens are stored encrypted with Airflow's Fernet
key (``[core] fernet_key``), like Airflow's own connections and variables.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import sqlalchemy as sa

from crm_sync.warehouse.lock import named_lock
from crm_sync.warehouse.ops import upsert
from crm_sync.warehouse.tables import oauth_token

LOCK_WAIT_S = 120.0


class TokenStore(Protocol):
    """Where the newest refresh token of a connection lives between runs."""

    def load(self) -> str | None: ...

    def save(self, refresh_token: str) -> None: ...


class AirflowVariableTokenStore:
    """Keeps the refresh token in an Airflow Variable (encrypted at rest with Fernet; its key
    contains "token", so Airflow masks the value in every log)."""

    def __init__(self, conn_id: str, prefix: str = "crm_sync_ghl_refresh_token"):
        self.key = f"{prefix}__{conn_id}"

    def load(self) -> str | None:
        from airflow.sdk import Variable

        return Variable.get(self.key, default=None)

    def save(self, refresh_token: str) -> None:
        from airflow.sdk import Variable

        Variable.set(self.key, refresh_token, description="OAuth refresh token, rotated by crm-sync")


@runtime_checkable
class SharedTokenStore(TokenStore, Protocol):
    """A token store every process shares: a lock around the refresh, and the access token kept."""

    def locked(self) -> AbstractContextManager[None]: ...

    def load_access(self) -> tuple[str, float] | None: ...

    def save_access(self, access_token: str, expires_at: float) -> None: ...


class TokenLockBusy(RuntimeError):
    """Another process held the connection's token lock for too long; Airflow retries the task."""


class TokenKeyMismatch(RuntimeError):
    """A stored token was encrypted with another Fernet key than this process has."""


def _fernet():
    from airflow.sdk.crypto import get_fernet

    return get_fernet()


def _decrypt(value: str, key: str) -> str:
    from cryptography.fernet import InvalidToken

    try:
        return _fernet().decrypt(value.encode()).decode()
    except InvalidToken:
        raise TokenKeyMismatch(f"the stored OAuth tokens of {key} cannot be decrypted with this process's "
                               "[core] fernet_key: give every Airflow process (each worker too) the same key") from None


class WarehouseTokenStore:
    """The newest refresh token and the shared access token of one connection, in ``oauth_token``.

    ``legacy`` is where the refresh token lived before (an Airflow Variable): read once when
    the warehouse has none yet, so upgrading keeps the install.
    """

    def __init__(self, key: str, legacy: TokenStore | None = None, url: str | None = None):
        self.key, self.legacy, self.url = key, legacy, url

    def __repr__(self) -> str:
        return f"WarehouseTokenStore({self.key!r})"

    def _engine(self) -> sa.Engine:
        from crm_sync.warehouse.db import engine

        return engine(self.url)

    @contextmanager
    def locked(self) -> Iterator[None]:
        busy = TokenLockBusy(f"the OAuth token lock of {self.key} stayed taken for {LOCK_WAIT_S:.0f} s")
        with named_lock(self._engine(), f"oauth-{self.key}", LOCK_WAIT_S, busy):
            yield

    def _row(self) -> sa.Row | None:
        with self._engine().connect() as conn:
            return conn.execute(sa.select(oauth_token).where(oauth_token.c.key == self.key)).first()

    def _write(self, **values: object) -> None:
        with self._engine().begin() as conn:
            upsert(conn, oauth_token, [{"key": self.key, **values, "updated_at": datetime.now(UTC)}], keys=["key"])

    def load(self) -> str | None:
        row = self._row()
        if row is not None and row.refresh_token:
            return _decrypt(row.refresh_token, self.key)
        return self.legacy.load() if self.legacy else None

    def save(self, refresh_token: str) -> None:
        self._write(refresh_token=_fernet().encrypt(refresh_token.encode()).decode())

    def load_access(self) -> tuple[str, float] | None:
        """The shared access token and its expiry (epoch seconds), if one was kept."""
        row = self._row()
        if row is None or not row.access_token or row.expires_at is None:
            return None
        return _decrypt(row.access_token, self.key), float(row.expires_at)

    def save_access(self, access_token: str, expires_at: float) -> None:
        self._write(access_token=_fernet().encrypt(access_token.encode()).decode(), expires_at=expires_at)


def shared_store(legacy: AirflowVariableTokenStore) -> TokenStore:
    """The store the hooks use: the warehouse's, shared by every worker, under the Variable's key."""
    return WarehouseTokenStore(legacy.key, legacy=legacy)

"""Where OAuth tokens live: the store protocols ``hooks.oauth`` refreshes through, an Airflow
Variable (the old home of a refresh token), and the warehouse, shared by every task, process and
Celery worker.

A GHL refresh token works once. Workers that each refreshed on their own would race: the
first wins, the others present a dead token (invalid_grant) and the install is lost. So a
refresh happens under the warehouse's lock (a PostgreSQL advisory lock, or an flock beside the
SQLite file), and the access token it yields is kept, with its expiry, for every other task to
reuse until shortly before it expires. Both tokens are stored encrypted with Airflow's Fernet
key (``[core] fernet_key``), like Airflow's own connections and variables; without a key they are
not stored at all (Airflow itself would store them in plaintext), and a refresh is refused before
it asks for a token it could not keep.

Key rotation: ``[core] fernet_key`` may list several keys, newest first (Airflow's MultiFernet). A
token encrypted with an older key, or stored in plaintext by an older crm-sync, is re-encrypted
with the newest key when read; ``python -m crm_sync.cli rotate-token-key`` does every row at once
(``airflow rotate-fernet-key`` covers Airflow's connections and variables, not this table).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from crm_sync.warehouse.lock import named_lock
from crm_sync.warehouse.ops import upsert
from crm_sync.warehouse.tables import oauth_token

LOCK_WAIT_S = 120.0
log = logging.getLogger(__name__)


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
        """Refused without a Fernet key: Airflow would keep the Variable in plaintext."""
        from airflow.sdk import Variable

        require_key()
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


class TokenKeyMissing(RuntimeError):
    """No Fernet key: a token would be stored in plaintext, so it is not stored (nor asked for)."""


def require_key():
    """Airflow's Fernet (a MultiFernet of ``[core] fernet_key``'s keys); refuses a missing key."""
    from airflow.sdk.crypto import get_fernet

    try:
        fernet = get_fernet()
    except Exception as exc:  # noqa: BLE001 - AirflowException wrapping cryptography's ValueError
        raise TokenKeyMissing("[core] fernet_key is not a Fernet key (32 url-safe base64-encoded bytes; several "
                              "comma-separated while rotating): OAuth tokens cannot be stored encrypted") from exc
    if not fernet.is_encrypted:
        raise TokenKeyMissing("OAuth tokens are stored only encrypted and [core] fernet_key is empty: set it "
                              "(AIRFLOW__CORE__FERNET_KEY) to the same key in every Airflow process, then run again")
    return fernet


def _newest_key() -> Fernet:
    """The first key of ``[core] fernet_key``: the one Airflow's MultiFernet encrypts with."""
    from airflow.sdk.configuration import conf

    return Fernet(conf.get("core", "fernet_key").split(",")[0].encode())


def _is_fernet_token(value: str) -> bool:
    """A Fernet token (version byte 0x80), not a plaintext value written by an older crm-sync with no key."""
    try:
        raw = base64.urlsafe_b64decode(value.encode())
    except ValueError:
        return False
    return len(raw) >= 57 and raw[0] == 0x80


def _open(value: str, key: str) -> tuple[str, bool]:
    """The token, and whether it must be written again: plaintext, or encrypted with an older key."""
    fernet = require_key()
    if not _is_fernet_token(value):
        return value, True
    try:
        return _newest_key().decrypt(value.encode()).decode(), False
    except InvalidToken:
        pass
    try:
        return fernet.decrypt(value.encode()).decode(), True
    except InvalidToken:
        raise TokenKeyMismatch(f"the stored OAuth tokens of {key} cannot be decrypted with this process's "
                               "[core] fernet_key: give every Airflow process (each worker too) the same key") from None


def _seal(token: str) -> str:
    return require_key().encrypt(token.encode()).decode()


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

    def _read(self, column: str, stored: str) -> str:
        """Decrypt one stored token; one in plaintext or under an older key is sealed again, unless
        another process wrote a new one meanwhile."""
        token, stale = _open(stored, self.key)
        if stale:
            try:
                with self._engine().begin() as conn:
                    conn.execute(sa.update(oauth_token).where(oauth_token.c.key == self.key,
                                                              oauth_token.c[column] == stored)
                                 .values({column: _seal(token)}))
            except sa.exc.SQLAlchemyError as exc:  # read again next time; the token itself is fine
                log.warning("re-encrypting the stored OAuth token of %s failed: %s", self.key, type(exc).__name__)
        return token

    def ready(self) -> None:
        """Raise TokenKeyMissing when a token could not be stored encrypted: before a refresh asks for one."""
        require_key()

    def load(self) -> str | None:
        row = self._row()
        if row is not None and row.refresh_token:
            return self._read("refresh_token", row.refresh_token)
        return self.legacy.load() if self.legacy else None

    def save(self, refresh_token: str) -> None:
        self._write(refresh_token=_seal(refresh_token))

    def load_access(self) -> tuple[str, float] | None:
        """The shared access token and its expiry (epoch seconds), if one was kept."""
        row = self._row()
        if row is None or not row.access_token or row.expires_at is None:
            return None
        return self._read("access_token", row.access_token), float(row.expires_at)

    def save_access(self, access_token: str, expires_at: float) -> None:
        self._write(access_token=_seal(access_token), expires_at=expires_at)


def shared_store(legacy: AirflowVariableTokenStore) -> TokenStore:
    """The store the hooks use: the warehouse's, shared by every worker, under the Variable's key."""
    return WarehouseTokenStore(legacy.key, legacy=legacy)


def rotate_all(url: str | None = None) -> int:
    """Re-encrypt every stored token with the newest key of ``[core] fernet_key`` (and seal any a
    keyless crm-sync left in plaintext); returns how many rows were written. Each row is rewritten
    only if unchanged since read, so a refresh running meanwhile wins."""
    from crm_sync.warehouse.db import engine

    written = 0
    with engine(url).begin() as conn:
        for row in conn.execute(sa.select(oauth_token)).all():
            values = {column: _seal(_open(getattr(row, column), row.key)[0])
                      for column in ("refresh_token", "access_token") if getattr(row, column)}
            if values:
                written += conn.execute(sa.update(oauth_token).where(
                    oauth_token.c.key == row.key, *(oauth_token.c[c] == getattr(row, c) for c in values))
                    .values(values)).rowcount
    return written

"""The shared secret an app signs its webhooks with: an extra of the app's Airflow connection
(``app.conn_id``, extra ``app.webhooks.signature.secret_extra``), read in the api-server through
Airflow's connection API and kept a minute, so a burst of webhooks costs one lookup.

A missing connection or extra is ``SecretMissing`` naming both (the receiver answers 503), never
the value; a miss is remembered a few seconds only, so a fixed connection is used at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

APP_CONN_TYPE = "crm_sync_app"  # crm_sync.hooks.app.AppHook.conn_type: the UI form saves extra__<type>__<name>


class SecretMissing(Exception):
    """The app's connection or its secret extra is not there; names them, never a value."""


def airflow_extras(conn_id: str) -> dict[str, str] | None:
    """The connection's extras (as the UI form or a plain JSON extra saves them), None when undefined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException, AirflowRuntimeError

    try:
        conn = BaseHook.get_connection(conn_id)
    except (AirflowNotFoundException, AirflowRuntimeError):
        return None
    prefix = f"extra__{APP_CONN_TYPE}__"
    return {key.removeprefix(prefix): value for key, value in conn.extra_dejson.items()
            if isinstance(value, str) and value}


class AppSecrets:
    """Secrets by (connection, extra), each kept ``ttl_s``; thread-safe (requests run in a pool)."""

    def __init__(self, extras: Callable[[str], dict[str, str] | None] = airflow_extras, ttl_s: float = 60.0,
                 miss_ttl_s: float = 5.0):
        self.extras, self.ttl_s, self.miss_ttl_s = extras, ttl_s, miss_ttl_s
        self._kept: dict[tuple[str, str], tuple[float, str | SecretMissing]] = {}
        self._lock = threading.Lock()

    def secret(self, conn_id: str, extra: str) -> str:
        key, now = (conn_id, extra), time.monotonic()
        with self._lock:
            kept = self._kept.get(key)
        if kept is None or kept[0] <= now:
            value = self._read(conn_id, extra)
            with self._lock:
                self._kept[key] = (now + (self.miss_ttl_s if isinstance(value, SecretMissing) else self.ttl_s), value)
            kept = self._kept[key]
        if isinstance(kept[1], SecretMissing):
            raise kept[1]
        return kept[1]

    def _read(self, conn_id: str, extra: str) -> str | SecretMissing:
        try:
            extras = self.extras(conn_id)
        except Exception as exc:  # noqa: BLE001 - the metadata database is down, a backend refused: say which
            return SecretMissing(f"the app's connection {conn_id} could not be read ({exc.__class__.__name__})")
        if extras is None:
            return SecretMissing(f"the app's connection {conn_id} is not defined")
        if not extras.get(extra):
            return SecretMissing(f"the app's connection {conn_id} has no extra {extra} (the webhook secret)")
        return extras[extra]

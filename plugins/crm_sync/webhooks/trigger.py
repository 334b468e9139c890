"""Wake the DAGs of a location (GHL's webhooks) or of an app's profile (the app's own): an Airflow asset
event, at most one per asset per interval.

A burst of webhooks becomes a few asset events (so a few runs), not one per event: the first
event of a quiet location is signalled at once, later ones are gathered and signalled together
after the interval. An event whose signal is lost (the api-server stopped meanwhile) stays in
the inbox and is read by the next run, the scheduled one at the latest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from crm_sync.profile_webhooks import app_asset

APP_ASSET_PREFIX = app_asset("")

log = logging.getLogger(__name__)


def emit_asset_event(asset_name: str) -> bool:
    """Record an event of the asset in Airflow's metadata database, as the REST API's
    ``POST /api/v2/assets/events`` does; the scheduler then queues every DAG scheduled on it.
    Runs inside the api-server, which has the database. False if no DAG uses the asset."""
    from airflow.assets.manager import asset_manager
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        asset = session.scalar(select(AssetModel).where(AssetModel.name == asset_name).limit(1))
        if asset is None:
            return False
        sender = "app-webhook" if asset_name.startswith(APP_ASSET_PREFIX) else "ghl-webhook"
        return asset_manager.register_asset_change(asset=asset, extra={"source": sender},
                                                   source_is_api=True, session=session) is not None


class Coalescer:
    """Calls ``signal(key)`` for each notified key at most once per ``interval_s``, from one thread."""

    def __init__(self, signal: Callable[[str], bool], interval_s: float):
        self.signal, self.interval_s = signal, interval_s
        self._due: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def notify(self, key: str) -> None:
        with self._lock:
            self._due.add(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="crm-sync-webhook-trigger", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                due, self._due = self._due, set()
                if not due:
                    self._thread = None
                    return
            for key in sorted(due):
                try:
                    if self.signal(key):
                        self.sent += 1
                    else:
                        log.warning("no DAG is scheduled on asset %s; its events wait for a scheduled run", key)
                except Exception:  # noqa: BLE001 - the events are stored; the scheduled run reads them
                    log.exception("asset event for %s failed; its events wait for the next run", key)
            time.sleep(self.interval_s)

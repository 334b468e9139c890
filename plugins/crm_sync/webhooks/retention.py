"""The receiver prunes the inbox itself, so events do not outlive their retention when no profile's
run comes to clean up (a profile paused, removed, or failing).

A location's events are kept for the longest ``retention_days`` of the profiles naming it (null:
kept), any other location's for the longest ``retention_days`` of all profiles;
``webhook_retention_days``, when set, caps both. Pruning runs in the api-server after an answer, at
most once per ``webhook_prune_interval_seconds`` per process, in batches of ``BATCH`` rows (short
transactions), at most ``BATCHES`` of them a time. A profile's run still cleans up its own location
(crm_sync.pipeline.retention); the two delete the same rows, whichever comes first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from crm_sync.warehouse.tables import webhook_done, webhook_inbox, webhook_unrouted
from crm_sync.webhooks.routing import retention

log = logging.getLogger(__name__)
BATCH, BATCHES = 1000, 20


def expired(locations: dict[str, int | None], others: int, cap: int | None,
            now: datetime) -> sa.ColumnElement[bool]:
    """Inbox rows past retention: ``locations`` days per named location (None: kept), ``others`` days
    for every other location, each capped at ``cap`` days when it is set."""
    def cutoff(days: int | None) -> datetime | None:
        days = cap if days is None else days if cap is None else min(days, cap)
        return None if days is None else now - timedelta(days=days)

    received = webhook_inbox.c.received_at
    terms = [sa.and_(webhook_inbox.c.location_id == location, received < moment)
             for location, days in sorted(locations.items()) if (moment := cutoff(days)) is not None]
    if (moment := cutoff(others)) is not None:
        terms.append(sa.and_(webhook_inbox.c.location_id.not_in(sorted(locations)), received < moment)
                     if locations else received < moment)
    return sa.or_(*terms) if terms else sa.false()


def prune(warehouse: sa.Engine, where: sa.ColumnElement[bool], counts_before: datetime | None = None) -> int:
    """Delete the inbox rows ``where`` selects (and their done marks), ``BATCH`` rows per transaction,
    at most ``BATCHES`` transactions; and the unrouted counts last seen before ``counts_before``.
    How many events went."""
    gone = 0
    for _ in range(BATCHES):
        with warehouse.begin() as conn:
            ids = conn.scalars(sa.select(webhook_inbox.c.id).where(where).order_by(webhook_inbox.c.id)
                               .limit(BATCH)).all()
            if ids:
                conn.execute(sa.delete(webhook_done).where(webhook_done.c.inbox_id.in_(ids)))
                gone += conn.execute(sa.delete(webhook_inbox).where(webhook_inbox.c.id.in_(ids))).rowcount
        if len(ids) < BATCH:
            break
    if counts_before is not None:
        with warehouse.begin() as conn:
            conn.execute(sa.delete(webhook_unrouted).where(webhook_unrouted.c.last_seen < counts_before))
    return gone


class Pruner:
    """Prunes the inbox at most once per ``interval_s`` in this process; the first call prunes."""

    def __init__(self, warehouse: sa.Engine, profiles_dir: Path, interval_s: float, cap_days: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.warehouse, self.profiles_dir, self.interval_s = warehouse, profiles_dir, interval_s
        self.cap_days, self.clock = cap_days, clock
        self._next = float("-inf")
        self._lock = threading.Lock()

    def _claim(self) -> bool:
        with self._lock:
            if self.clock() < self._next:
                return False
            self._next = self.clock() + self.interval_s
            return True

    def maybe_prune(self, now: datetime | None = None) -> int | None:
        """Prune if this process has not within the interval; the events deleted, None when not due.
        A failure is logged, not raised: the answer has gone, and the next interval tries again."""
        if not self._claim():
            return None
        now = now or datetime.now(UTC)
        try:
            locations, others = retention(self.profiles_dir)
            days = others if self.cap_days is None else min(others, self.cap_days)
            gone = prune(self.warehouse, expired(locations, others, self.cap_days, now), now - timedelta(days=days))
        except Exception:  # noqa: BLE001 - logged with its traceback; pruning is retried next interval
            log.exception("pruning the webhook inbox failed; it is tried again in %s s", self.interval_s)
            return 0
        if gone:
            log.info("webhook inbox: %s expired events deleted", gone)
        return gone

"""A bound on every paged read: a server that never stops paging must not hold a task forever.

Every paginator (the app client's five styles, GHL's contact and task searches) feeds each
page to one ``PageGuard``. It fails the read when the pages or records pass the profile's
limits, or when a page brings no record not already seen (an app that ignores the offset, or
hands out a fresh cursor to the same page forever). The error names the entity and the
profile setting to check; a retry would loop the same way, so it is not retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from crm_sync.errors import NoRetryError
from crm_sync.records import record_key

DEFAULT_MAX_PAGES = 10_000
DEFAULT_MAX_RECORDS = 500_000


class PagingRunaway(NoRetryError):
    """A paged read that would not end; names the entity and the setting that bounds it."""


class PageGuard:
    """Counts pages and records of one read; ``page()`` raises ``PagingRunaway`` when it must stop."""

    def __init__(self, what: str, setting: str, id_of: Callable[[Any], Any], *,
                 max_pages: int = DEFAULT_MAX_PAGES, max_records: int = DEFAULT_MAX_RECORDS):
        self.what, self.setting, self.id_of = what, setting, id_of
        self.max_pages, self.max_records = max_pages, max_records
        self.pages = 0
        self.seen: set[str] = set()

    def page(self, records: Iterable[Any]) -> None:
        """Account for one page just received (before its records are used)."""
        records = list(records)
        self.pages += 1
        keys = {record_key(record, self.id_of(record) if isinstance(record, dict) else None) for record in records}
        new = keys - self.seen
        if records and not new:
            self._stop(f"page {self.pages} brought no record not already seen (the server repeats pages)")
        self.seen |= new
        if self.pages > self.max_pages:
            self._stop(f"more than {self.max_pages} pages", "max_pages")
        if len(self.seen) > self.max_records:
            self._stop(f"more than {self.max_records} records", "max_records")

    def _stop(self, why: str, limit: str | None = None) -> None:
        setting = f"{self.setting}.{limit}" if limit else f"{self.setting} (its paging settings)"
        raise PagingRunaway(f"reading {self.what} stopped: {why} after {self.pages} pages and "
                            f"{len(self.seen)} records; check the profile setting {setting}")


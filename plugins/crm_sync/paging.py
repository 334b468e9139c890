"""Paged reads: one paginator class per paging style, and a bound on every read.

A paginator only says where the next page is: ``first()`` puts the first page's position on
the call, ``next()`` reads the page just received and returns the next call, or None when the
list is done. It holds no state, so one paginator serves any number of reads. ``pages()`` is
the one loop: it sends each call through the caller's ``fetch`` and feeds every page to one
``PageGuard``, the only loop detector. The guard fails the read when the pages or records pass
the profile's limits, or when a page brings no record not already seen (an app that ignores
the offset, or hands out a fresh cursor, or one pointing back, to the same page forever). The
error names the entity and the profile setting to check; a retry would loop the same way, so
it is not retried.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from crm_sync.errors import NoRetryError
from crm_sync.http import ApiError
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


@dataclass(frozen=True)
class PageRequest:
    """One page's call: the path and its parameters (a GET's query, a POST's JSON body);
    ``params`` None when the path carries them (a next-page link)."""

    path: str
    params: dict[str, Any] | None = None

    def with_param(self, name: str, value: Any) -> PageRequest:
        """The same call with one parameter set (a parameter already there keeps its place)."""
        return PageRequest(self.path, {**(self.params or {}), name: value})


class Paginator(ABC):
    """Where the next page of a list is, for one paging style."""

    def first(self, request: PageRequest) -> PageRequest:
        """The first page's call: the caller's request with the starting position, if any."""
        return request

    @abstractmethod
    def next(self, request: PageRequest, body: Any, records: list[Any]) -> PageRequest | None:
        """The next page's call, from the call just made, its answer and its (non-empty) records;
        None: the list is done."""


class SinglePagePaginator(Paginator):
    """One call returns everything."""

    def next(self, request: PageRequest, body: Any, records: list[Any]) -> None:
        return None


class PageNumberPaginator(Paginator):
    """A page number in ``param``, from 1. The list ends when ``has_more`` reads false from the
    answer or, for an app with no such flag, on a page shorter than ``size``."""

    start = 1

    def __init__(self, param: str, size: int, has_more: Callable[[Any], Any] | None = None):
        self.param, self.size, self.has_more = param, size, has_more

    def step(self, records: list[Any]) -> int:
        return 1

    def first(self, request: PageRequest) -> PageRequest:
        return request.with_param(self.param, self.start)

    def next(self, request: PageRequest, body: Any, records: list[Any]) -> PageRequest | None:
        more = self.has_more(body) if self.has_more else len(records) >= self.size
        if not more:
            return None
        return request.with_param(self.param, (request.params or {})[self.param] + self.step(records))


class OffsetPaginator(PageNumberPaginator):
    """The number of records already read in ``param``, from 0; ends as page numbers do."""

    start = 0

    def step(self, records: list[Any]) -> int:
        return len(records)


class SkipLimitPaginator(OffsetPaginator):
    """GHL's task search: ``skip`` moves by the ``limit`` asked for, not by the records read (an
    answer may nest tasks in arrays, which the caller flattens); a short page ends the list."""

    def __init__(self, size: int, param: str = "skip"):
        super().__init__(param, size)

    def step(self, records: list[Any]) -> int:
        return self.size


class CursorPaginator(Paginator):
    """The answer names the next page's cursor (``cursor_of``), sent back in ``param``; none ends the list."""

    def __init__(self, param: str, cursor_of: Callable[[Any], Any]):
        self.param, self.cursor_of = param, cursor_of

    def next(self, request: PageRequest, body: Any, records: list[Any]) -> PageRequest | None:
        cursor = self.cursor_of(body)
        return request.with_param(self.param, cursor) if cursor else None


class NextLinkPaginator(Paginator):
    """The answer carries the next page's URL (``link_of``); none ends the list. The link carries
    every parameter, so the call sends none of its own (httpx would replace the link's query)."""

    def __init__(self, link_of: Callable[[Any], Any], base_path: str = ""):
        self.link_of = link_of
        self.base_path = base_path  # the base URL's own path (``/v1``), which the link repeats

    def next(self, request: PageRequest, body: Any, records: list[Any]) -> PageRequest | None:
        link = self.link_of(body)
        return PageRequest(relative(link, self.base_path)) if link else None


class SearchAfterPaginator(Paginator):
    """GHL's contact search: a full page's last hit holds the ``searchAfter`` cursor of the next;
    a short page ends the list."""

    def __init__(self, size: int):
        self.size = size

    def next(self, request: PageRequest, body: Any, records: list[Any]) -> PageRequest | None:
        if len(records) < self.size:
            return None
        cursor = records[-1].get("searchAfter") if isinstance(records[-1], dict) else None
        if not isinstance(cursor, list) or not cursor:
            raise ApiError(None, "POST", request.path, "a full page whose last contact has no searchAfter")
        return request.with_param("searchAfter", cursor)


def relative(link: str, base_path: str = "") -> str:
    """A next-page link, as a path on our base URL (the host is the one we already trust). A link
    under the base URL's own path (``/v1/contacts`` on ``https://app/v1``) loses that prefix, which
    the client adds again."""
    parts = urlsplit(link)
    path, base = parts.path, base_path.rstrip("/")
    if base and path.startswith(base + "/"):
        path = path[len(base):]
    return f"{path}?{parts.query}" if parts.query else path


def pages(paginator: Paginator, request: PageRequest, fetch: Callable[[PageRequest], tuple[Any, list[Any]]],
          guard: PageGuard) -> Iterator[list[Any]]:
    """Every page of one read, each counted by ``guard`` before it is used. ``fetch`` sends a call and
    returns its answer and the records in it; an empty page ends the list. The next call goes out only
    once the caller asks for the next page."""
    call: PageRequest | None = paginator.first(request)
    while call is not None:
        body, records = fetch(call)
        guard.page(records)
        yield records
        call = paginator.next(call, body, records) if records else None

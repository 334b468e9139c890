"""The paging styles a REST app simulator answers in: page numbers with meta, cursors, fixed pages, next
links, offset and total (each an app's own, as its module declares)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request

from harness.simulators.rest_api import BadRequest

# ------------------------------------------------------------------ paging styles


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    raw = query.get(name)
    try:
        value = default if raw in (None, "") else int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadRequest(f"{name} must be an integer {bounds}")
    return value


def _envelope(key: str | None, rows: list[dict[str, Any]], **extra: Any) -> Any:
    return rows if key is None else {key: rows, **extra}


@dataclass(frozen=True)
class PageMeta:
    """``?page=1&per_page=N`` -> ``{key: [...], "meta": {page, per_page, total, has_more}}``."""

    default_size: int = 50
    max_size: int = 100

    def page(self, rows: list[dict[str, Any]], request: Request, key: str | None, position: Callable) -> Any:
        page = _int_param(request.query_params, "page", 1, 1)
        size = _int_param(request.query_params, "per_page", self.default_size, 1, self.max_size)
        start = (page - 1) * size
        meta = {"page": page, "per_page": size, "total": len(rows), "has_more": start + size < len(rows)}
        return _envelope(key, rows[start:start + size], meta=meta)


@dataclass(frozen=True)
class Cursor:
    """``?limit=N&cursor=<opaque>`` -> ``{key: [...], "next_cursor": str | None}``.

    The cursor holds the position (sort key) of the last record served, not an offset, so a record
    changed while a client pages moves to the end and is met again rather than shifting the pages
    under the client. Ascending orders only.
    """

    default_size: int = 50
    max_size: int = 200

    def page(self, rows: list[dict[str, Any]], request: Request, key: str | None, position: Callable) -> Any:
        size = _int_param(request.query_params, "limit", self.default_size, 1, self.max_size)
        if cursor := request.query_params.get("cursor"):
            after = _decode_cursor(cursor)
            rows = [row for row in rows if position(row) > after]
        chunk = rows[:size]
        next_cursor = _encode_cursor(position(chunk[-1])) if len(rows) > size else None
        return _envelope(key, chunk, next_cursor=next_cursor)


def _encode_cursor(position: tuple[datetime, tuple[int, Any]]) -> str:
    moment, (kind, record_id) = position
    raw = json.dumps([moment.isoformat(), kind, record_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, tuple[int, Any]]:
    try:
        moment, kind, record_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(moment), (int(kind), record_id)
    except (ValueError, TypeError) as exc:
        raise BadRequest("cursor is not one this API gave out") from exc


@dataclass(frozen=True)
class FixedPages:
    """``?page=N`` of ``size`` records, a bare JSON array: a shorter page is the last, past the end is ``[]``."""

    size: int = 25

    def page(self, rows: list[dict[str, Any]], request: Request, key: str | None, position: Callable) -> Any:
        start = (_int_param(request.query_params, "page", 1, 1) - 1) * self.size
        return _envelope(key, rows[start:start + self.size])


@dataclass(frozen=True)
class NextLink:
    """``?page&per_page`` -> ``{key: [...], "pages": {"next": absolute URL | None, page, per_page, total_pages}}``."""

    default_size: int = 50
    max_size: int = 50

    def page(self, rows: list[dict[str, Any]], request: Request, key: str | None, position: Callable) -> Any:
        page = _int_param(request.query_params, "page", 1, 1)
        size = _int_param(request.query_params, "per_page", self.default_size, 1, self.max_size)
        total_pages = -(-len(rows) // size)
        next_url = str(request.url.include_query_params(page=page + 1)) if page < total_pages else None
        pages = {"next": next_url, "page": page, "per_page": size, "total_pages": total_pages}
        return _envelope(key, rows[(page - 1) * size:page * size], pages=pages)


@dataclass(frozen=True)
class OffsetTotal:
    """``?offset=0&limit=N`` -> ``{key: [...], "total": N}``."""

    default_size: int = 100
    max_size: int = 100

    def page(self, rows: list[dict[str, Any]], request: Request, key: str | None, position: Callable) -> Any:
        offset = _int_param(request.query_params, "offset", 0, 0)
        size = _int_param(request.query_params, "limit", self.default_size, 1, self.max_size)
        return _envelope(key, rows[offset:offset + size], total=len(rows))

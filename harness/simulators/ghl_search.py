"""``POST /contacts/search`` over one location's contacts: filters, sort, ``searchAfter`` and page
paging, as GHL answers them (NOTES.md)."""

from __future__ import annotations

import functools
from typing import Any

from harness.simulators.ghl_account import (
    DATE_FIELDS,
    MAX_PAGE_DEPTH,
    MAX_PAGE_LIMIT,
    MAX_QUERY_LENGTH,
    date_ms,
    epoch_ms,
    text,
)

# ---------------------------------------------------------------- contact search

RANGE_OPERATORS = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}


def _in_range(moment: float, bounds: Any) -> bool:
    if not isinstance(bounds, dict) or not bounds or set(bounds) - set(RANGE_OPERATORS):
        raise ValueError("a range filter's value takes gt, gte, lt and/or lte")
    return all(RANGE_OPERATORS[op](moment, epoch_ms(bound)) for op, bound in bounds.items())


def _compare_text(actual: Any, operator: str, value: Any) -> bool:
    values = [text(v) for v in actual] if isinstance(actual, list) else [text(actual)]
    if operator in ("eq", "not_eq"):
        hit = text(value) in values
    else:
        hit = any(text(value) in v for v in values)
    return hit if operator in ("eq", "contains") else not hit


def _matches(contact: dict[str, Any], flt: dict[str, Any]) -> bool:
    """One search filter, or a group of them (``{group: AND|OR, filters: [...]}``)."""
    if "group" in flt:
        combine = all if str(flt["group"]).upper() == "AND" else any
        return combine(_matches(contact, f) for f in flt.get("filters", []))
    name, operator, value = flt.get("field"), flt.get("operator"), flt.get("value")
    actual = contact.get(name)
    if operator in ("exists", "not_exists"):
        return (actual not in (None, "", [])) == (operator == "exists")
    if name in DATE_FIELDS:
        if operator != "range":
            raise ValueError(f"{name} filters only by range or exists")
        return _in_range(date_ms(contact, name), value)
    if operator in ("eq", "not_eq", "contains", "not_contains"):
        return _compare_text(actual, operator, value)
    raise ValueError(f"unsupported filter {flt}")


def _sort_value(contact: dict[str, Any], name: str) -> Any:
    return int(date_ms(contact, name)) if name in DATE_FIELDS else text(contact.get(name))


def _order(a: list[Any], b: list[Any], directions: list[str]) -> int:
    """Compare two searchAfter keys field by field, each in its own direction (the id last, ascending)."""
    for left, right, direction in zip(a, b, directions, strict=True):
        if left != right:
            smaller = left < right
            return (-1 if smaller else 1) * (-1 if direction == "desc" else 1)
    return 0


def search_problems(body: dict[str, Any]) -> list[str]:
    limit, page = body.get("pageLimit", 20), body.get("page", 1)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
        return [f"pageLimit must be an integer from 1 to {MAX_PAGE_LIMIT}"]
    if not isinstance(page, int) or page < 1:
        return ["page must be a positive integer"]
    problems = []
    if len(body.get("sort") or []) > 2:
        problems.append("sort accepts at most 2 entries")
    if len(str(body.get("query") or "")) > MAX_QUERY_LENGTH:
        problems.append(f"query must be shorter than or equal to {MAX_QUERY_LENGTH} characters")
    if not body.get("searchAfter") and page * limit > MAX_PAGE_DEPTH:
        problems.append(f"page beyond {MAX_PAGE_DEPTH} results: use searchAfter")
    return problems


def _query_matches(contact: dict[str, Any], query: str) -> bool:
    return any(query.lower() in text(contact.get(name))
               for name in ("firstName", "lastName", "name", "email", "phone", "companyName"))


def search_contacts(contacts: list[dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    """The answer to ``POST /contacts/search`` over one location's contacts (raises ValueError)."""
    sort = body.get("sort") or [{"field": "dateUpdated", "direction": "asc"}]
    names = [entry["field"] for entry in sort]
    directions = [entry.get("direction", "asc") for entry in sort] + ["asc"]
    rows = [dict(c) for c in contacts if all(_matches(c, f) for f in body.get("filters", []))
            and _query_matches(c, str(body.get("query") or ""))]
    for row in rows:
        row["searchAfter"] = [*(_sort_value(row, name) for name in names), row["id"]]
    rows.sort(key=functools.cmp_to_key(lambda a, b: _order(a["searchAfter"], b["searchAfter"], directions)))
    limit = int(body.get("pageLimit", 20))
    if cursor := body.get("searchAfter"):
        if len(cursor) != len(directions):
            raise ValueError(f"searchAfter must have {len(directions)} values, as the hits' searchAfter")
        for position, (value, name) in enumerate(zip(cursor, [*names, "id"], strict=True)):
            number = name in DATE_FIELDS
            if isinstance(value, bool) or not isinstance(value, (int, float) if number else str):
                raise ValueError(f"searchAfter[{position}] must be a {'number' if number else 'string'}, "
                                 "as in the hits' searchAfter")
        page = [r for r in rows if _order(r["searchAfter"], list(cursor), directions) > 0][:limit]
    else:
        start = (int(body.get("page", 1)) - 1) * limit
        page = rows[start:start + limit]
    # The spec's list DTO says `count`; GHL answers `total` (NOTES.md): follow GHL.
    return {"contacts": page, "total": len(rows)}

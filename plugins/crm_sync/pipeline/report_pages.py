"""A run's writes and quarantined rows, one page at a time, and the report's counts, all in SQL.

A first sync writes 100,000 records: its report must open without reading them all. The console
asks for one page (`ReportQuery`: filters by entity, side, status, rule, a search, the page) and
the database filters, counts and slices it; the report's counts (per side, per entity, per rule)
are aggregates. The report task's exported file asks for everything (no query).

Search is case-insensitive (ASCII letters; other letters match as typed) over a write's record ids
(its target, the GHL and app ids of its link), its merged record's email, first and last name
(also "first last") and title, and the profile rules whose actions it carries (``outbox.rule``); over
a quarantined row's source id, the rule's detail and the raw payload as text (its fields are each
source's own). A LIKE: no index serves it, each search reads
the run's rows once (bench/report_page.py measures it at 100,000 writes).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, tzinfo
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa

from crm_sync.profile import CANONICAL
from crm_sync.timezones import show
from crm_sync.warehouse.outbox import UNSENT
from crm_sync.warehouse.tables import outbox, quarantine, raw_record, xref

DONE = ("sent", "failed")  # a load's outcomes, credited to the run whose load sent it (outbox.sent_run_id)
SIDES = ("ghl", "app")
SENT_AS = {"create": "created", "update": "updated", "delete": "deleted", "archive": "deleted"}
PER_PAGE, PER_PAGE_MAX = 50, 500
# The status filter, as the run sees its writes (`seen_by`): planned covers pending and dry_run.
STATUSES = {"sent": ("sent",), "failed": ("failed",), "planned": UNSENT, "sending": ("sending",),
            "superseded": ("superseded",)}


@dataclass(frozen=True)
class ReportQuery:
    """What one report page lists: filters (entity and side: both lists; status: writes; rule:
    quarantined rows), a search ``q``, the writes' ``page``, the quarantined rows' ``qpage``. Out of
    range values are brought in range (a page past the end shows the last one; per_page is capped)."""

    entity: str | None = None
    side: str | None = None
    status: str | None = None
    rule: str | None = None
    q: str | None = None
    page: int = 1
    qpage: int = 1
    per_page: int = PER_PAGE

    def __post_init__(self) -> None:
        for name in ("entity", "side", "status", "rule", "q"):
            value = (getattr(self, name) or "").strip()
            object.__setattr__(self, name, value or None)
        object.__setattr__(self, "page", max(1, self.page))
        object.__setattr__(self, "qpage", max(1, self.qpage))
        object.__setattr__(self, "per_page", min(max(1, self.per_page), PER_PAGE_MAX))

    @property
    def filtered(self) -> bool:
        return any((self.entity, self.side, self.status, self.rule, self.q))

    def link(self, **changes: Any) -> str:
        """The query string of this view with ``changes`` (defaults left out): a shareable link."""
        wanted = replace(self, **changes)
        defaults = {f.name: f.default for f in fields(self)}
        return urlencode({k: v for k, v in asdict(wanted).items() if v is not None and v != defaults[k]})


def credited(run_id: str) -> sa.ColumnElement[bool]:
    """The outbox rows of a run's report: those it planned, and those its load sent (or failed) for good."""
    return sa.or_(outbox.c.run_id == run_id, sa.and_(outbox.c.sent_run_id == run_id, outbox.c.status.in_(DONE)))


def seen_by(write: Any, run_id: str, dry_run: bool) -> dict[str, Any]:
    """A write as the run sees it: its status, target, last error and the run that sent it. A write it
    planned that a later run sent is, for this run, still planned and not sent (a dry run's stays
    ``dry_run``), a create with no target yet: what its report said when it was written."""
    handled = write.sent_run_id or write.run_id  # rows sent before migration 0011: the run that planned them
    if write.status in DONE and handled != run_id:
        return {"target_id": None if write.op == "create" else write.target_id,
                "status": "dry_run" if dry_run else "pending", "last_error": None, "sent_by": None}
    return {"target_id": write.target_id, "status": write.status, "last_error": write.last_error,
            "sent_by": handled if write.status in DONE else None}


def _seen_status(run_id: str, dry_run: bool) -> sa.ColumnElement[str]:
    """`seen_by`'s status, in SQL."""
    handled = sa.func.coalesce(outbox.c.sent_run_id, outbox.c.run_id)
    return sa.case((sa.and_(outbox.c.status.in_(DONE), handled != run_id),
                    sa.literal("dry_run" if dry_run else "pending")), else_=outbox.c.status)


def contains(column: sa.ColumnElement, text: str, *, ignore_case: bool = False) -> sa.ColumnElement[bool]:
    """``text`` anywhere in ``column``, as typed: LIKE's own ``%``, ``_`` and ``\\`` in it are escaped.
    Every search of the console's lists is one of these."""
    term = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return (column.ilike if ignore_case else column.like)(f"%{term}%", escape="\\")


def _like(column: sa.ColumnElement, q: str) -> sa.ColumnElement[bool]:
    return contains(column, q, ignore_case=True)


def _in_json_text(column: sa.ColumnElement, q: str) -> sa.ColumnElement[bool]:
    """``q`` in a JSON column's text: as typed, or as the JSON writer escaped it (é as \\u00e9)."""
    text = sa.cast(column, sa.Text)
    escaped = json.dumps(q)[1:-1]
    return sa.or_(_like(text, q), _like(text, escaped)) if escaped != q else _like(text, q)


def _write_filters(query: ReportQuery, run_id: str, dry_run: bool) -> list[sa.ColumnElement[bool]]:
    where = []
    if query.entity:
        where.append(outbox.c.entity == query.entity)
    if query.side:
        where.append(outbox.c.side == query.side)
    if query.status:
        where.append(_seen_status(run_id, dry_run).in_(STATUSES.get(query.status, (query.status,))))
    if query.rule:
        where.append(sa.false())  # a rule names quarantined rows; no write broke one
    if query.q:
        merged = outbox.c.merged
        first, last = merged["first_name"].as_string(), merged["last_name"].as_string()
        name = sa.func.coalesce(first, "") + " " + sa.func.coalesce(last, "")
        where.append(sa.or_(*(_like(column, query.q) for column in (
            outbox.c.target_id, xref.c.ghl_id, xref.c.app_id, merged["email"].as_string(), name,
            merged["title"].as_string(), outbox.c.rule))))
    return where


def _quarantine_filters(query: ReportQuery) -> list[sa.ColumnElement[bool]]:
    where = []
    if query.entity:
        where.append(quarantine.c.entity == query.entity)
    if query.side:
        where.append(quarantine.c.side == query.side)
    if query.status:
        where.append(sa.false())  # a status is a write's
    if query.rule:
        where.append(quarantine.c.rule == query.rule)
    if query.q:
        where.append(sa.or_(_like(quarantine.c.source_id, query.q), _like(quarantine.c.detail, query.q),
                            _in_json_text(raw_record.c.payload, query.q)))
    return where


def page_span(total: int, page: int, per_page: int) -> dict[str, int]:
    """Which rows a page shows: "first-last of total" (0-0 of 0 when none); a page past the end is the last,
    one before the first the first. Every list of the console pages this way."""
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    first = (page - 1) * per_page
    return {"total": total, "page": page, "pages": pages, "per_page": per_page,
            "first": first + 1 if total else 0, "last": min(first + per_page, total)}


def listed(conn: sa.Connection, profile: str, run_id: str, dry_run: bool, zone: tzinfo = UTC,
           query: ReportQuery | None = None) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """The run's writes and quarantined rows the query asks for (None: all of them, in order), and
    per list which rows those are of how many (``total`` matches the filters, ``all`` ignores them)."""
    want = query or ReportQuery()
    writes = (sa.select(outbox, xref.c.ghl_id, xref.c.app_id).outerjoin(xref, xref.c.id == outbox.c.xref_id)
              .where(outbox.c.profile == profile, credited(run_id), *_write_filters(want, run_id, dry_run)))
    bad = (sa.select(quarantine, raw_record.c.payload, raw_record.c.run_id.label("read_in"))
           .outerjoin(raw_record, raw_record.c.id == quarantine.c.raw_id)
           .where(quarantine.c.profile == profile, quarantine.c.run_id == run_id, *_quarantine_filters(want)))
    found, spans = {}, {}
    for name, select, page, key in (("writes", writes, want.page, outbox.c.id),
                                    ("quarantine", bad, want.qpage, quarantine.c.id)):
        if query is None:  # everything, in order
            found[name] = conn.execute(select.order_by(key)).all()
            total = len(found[name])
            spans[name] = {**page_span(total, 1, max(total, 1)), "all": total}
            continue
        ids, total = _page_ids(conn, select, key, page, want.per_page)
        spans[name] = page_span(total, page, want.per_page)
        if not ids and total and page > spans[name]["page"]:  # past the end: the last page
            ids, total = _page_ids(conn, select, key, spans[name]["page"], want.per_page)
        spans[name]["all"] = total if not want.filtered else _count_all(conn, name, profile, run_id)
        found[name] = conn.execute(select.where(key.in_(ids)).order_by(key)).all() if ids else []
    rows = [_write(w, run_id, dry_run, zone) for w in found["writes"]]
    quarantined = [{"entity": q.entity, "side": q.side, "source_id": q.source_id, "rule": q.rule,
                    "detail": q.detail, "raw_id": q.raw_id, "payload": q.payload} for q in found["quarantine"]]
    query_shown = {k: v for k, v in asdict(want).items() if k in ("entity", "side", "status", "rule", "q")}
    return rows, quarantined, {"query": query_shown, **spans}


def _page_ids(conn: sa.Connection, select: sa.Select, key: sa.Column, page: int, per_page: int
              ) -> tuple[list[int], int]:
    """The ids of one page of ``select`` and how many rows it has in all, in one pass over the rows
    (a search reads every row once, not once to count and again to page): the ids only, counted by
    a window; the page's rows are then read by id. A page past the end is counted apart."""
    total_over = sa.func.count().over().label("total")
    narrow = select.with_only_columns(key, total_over).order_by(key).limit(per_page).offset(per_page * (page - 1))
    rows = conn.execute(narrow).all()
    if rows:
        return [row[0] for row in rows], rows[0].total
    if page == 1:
        return [], 0
    return [], conn.execute(sa.select(sa.func.count()).select_from(select.subquery())).scalar_one()


def _count_all(conn: sa.Connection, name: str, profile: str, run_id: str) -> int:
    if name == "writes":
        where = sa.and_(outbox.c.profile == profile, credited(run_id))
        return conn.execute(sa.select(sa.func.count()).select_from(outbox).where(where)).scalar_one()
    return conn.execute(sa.select(sa.func.count()).select_from(quarantine).where(
        quarantine.c.profile == profile, quarantine.c.run_id == run_id)).scalar_one()


def _write(w: Any, run_id: str, dry_run: bool, zone: tzinfo) -> dict[str, Any]:
    seen = seen_by(w, run_id, dry_run)
    return {"outbox_id": w.id, "entity": w.entity, "side": w.side, "op": w.op, "changes": _changes(w, zone),
            "target_id": seen["target_id"], "status": seen["status"], "last_error": seen["last_error"],
            "payload": w.payload, "decisions": w.decisions, "planned_by": w.run_id, "sent_by": seen["sent_by"],
            "rules": rules_of(w.rule)}


def rules_of(named: str | None) -> list[str]:
    """The profile rules whose actions are in a write (``outbox.rule``, comma-separated); none: the
    field mapping's own write."""
    return [name for name in (named or "").split(",") if name]


def _changes(write: Any, zone: tzinfo = UTC) -> list[dict[str, str]]:
    """The write as a diff: each field it sets, what the target side holds now and what it will hold."""
    held = {d["field"]: d.get(write.side, "") for d in write.decisions or []}
    kinds = CANONICAL.get(write.entity, {})

    def shown(name: str, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, list):
            return ", ".join(value)
        instant = kinds.get(name, ("",))[0] == "datetime" and isinstance(value, str) and len(value) > 10
        return show(value, zone) if instant else str(value)

    payload = dict(write.payload or {})
    # a rule's ``set`` of a side's own field (payload ``@set``) is shown as that field, named ``<side>:<path>``
    payload |= {f"{write.side}:{path}": value for path, value in (payload.pop("@set", None) or {}).items()}
    return [{"field": name, "before": "" if write.op == "create" else shown(name, held.get(name)),
             "after": shown(name, value)} for name, value in payload.items()]


# --- the report's counts ------------------------------------------------------------------------------

def counts(conn: sa.Connection, profile: str, run_ids: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """Per run, per side ("-": the whole run): writes by outcome, rows quarantined (per side: those the
    run read), rows landed. One query: each part answers (run_id, side, what, outcome or None, count).
    A write is counted as its report counts it (`seen_by`): sent or failed for the run whose load sent
    it, planned (not sent) for the run that planned it, if another sent it."""
    found = counts_of(conn, [profile], run_ids)
    mine: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    mine.update({run_id: by_side for (_, run_id), by_side in found.items()})
    return mine


def counts_of(conn: sa.Connection, profiles: list[str], run_ids: list[str]
              ) -> dict[tuple[str, str], dict[str, dict[str, int]]]:
    """`counts` of several profiles' runs in the same one query, per (profile, run id): the console's
    index asks it for a page of profiles at once. Run ids repeat across profiles (scheduled__<time>):
    the runs of ``run_ids`` of each profile are counted."""
    def of(table: sa.Table) -> tuple:
        return table.c.profile.in_(profiles), table.c.run_id.in_(run_ids)

    def named(what: str) -> Any:
        return sa.literal(what, sa.String)

    n, no_status = sa.func.count(), sa.cast(sa.null(), sa.String)
    bad_rows = sa.func.count(sa.distinct(quarantine.c.raw_id))
    handled = sa.func.coalesce(outbox.c.sent_run_id, outbox.c.run_id)
    done = (sa.select(outbox.c.profile, handled, outbox.c.side, outbox.c.op, outbox.c.status, n)
            .where(outbox.c.profile.in_(profiles), handled.in_(run_ids), outbox.c.status.in_(DONE))
            .group_by(outbox.c.profile, handled, outbox.c.side, outbox.c.op, outbox.c.status))
    planned = (sa.select(outbox.c.profile, outbox.c.run_id, outbox.c.side, outbox.c.op, named("planned"), n)
               .where(*of(outbox), sa.or_(outbox.c.status.in_(UNSENT),
                                          sa.and_(outbox.c.status.in_(DONE), handled != outbox.c.run_id)))
               .group_by(outbox.c.profile, outbox.c.run_id, outbox.c.side, outbox.c.op))
    read_here = sa.and_(raw_record.c.id == quarantine.c.raw_id, raw_record.c.run_id == quarantine.c.run_id)
    bad = (sa.select(quarantine.c.profile, quarantine.c.run_id, quarantine.c.side, named("quarantined"), no_status,
                     bad_rows).join(raw_record, read_here).where(*of(quarantine))
           .group_by(quarantine.c.profile, quarantine.c.run_id, quarantine.c.side))
    bad_in_run = (sa.select(quarantine.c.profile, quarantine.c.run_id, named("-"), named("quarantined"), no_status,
                            bad_rows).where(*of(quarantine)).group_by(quarantine.c.profile, quarantine.c.run_id))
    landed = (sa.select(raw_record.c.profile, raw_record.c.run_id, raw_record.c.side, named("landed"), no_status, n)
              .where(*of(raw_record)).group_by(raw_record.c.profile, raw_record.c.run_id, raw_record.c.side))

    found: dict[tuple[str, str], dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for profile, run_id, side, what, status, number in conn.execute(
            sa.union_all(done, planned, bad, bad_in_run, landed)):
        mine = found[profile, run_id][side]
        if status is None:  # rows counted
            mine[what] += number
            continue
        mine[status] += number
        if status == "sent" and what in SENT_AS:
            mine[SENT_AS[what]] += number
    return found


def tallies(found: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """One run's `counts`, per side, as `report.side_summary` takes them."""
    return {side: {"landed": 0, "quarantined": 0, "created": 0, "updated": 0, "deleted": 0, "failed": 0,
                   "planned": 0, **found.get(side, {})} for side in SIDES}


def by_rule(conn: sa.Connection, profile: str, run_id: str) -> dict[str, int]:
    """Rows quarantined per rule, most first (ties: the rule met first)."""
    n = sa.func.count()
    rows = conn.execute(sa.select(quarantine.c.rule, n).where(quarantine.c.profile == profile,
                                                              quarantine.c.run_id == run_id)
                        .group_by(quarantine.c.rule).order_by(n.desc(), sa.func.min(quarantine.c.id)))
    return {rule: number for rule, number in rows}


def by_entity(conn: sa.Connection, profile: str, run_id: str, read: dict[str, dict[str, int] | None]
              ) -> dict[str, dict[str, int]]:
    """Per entity: records read from each side (as extract counted them; else those landed), writes
    sent to each side, rows quarantined. Entities in the order the run met them."""
    first = sa.func.min(raw_record.c.id)
    landed = conn.execute(sa.select(raw_record.c.entity, raw_record.c.side, sa.func.count(), first).where(
        raw_record.c.profile == profile, raw_record.c.run_id == run_id)
        .group_by(raw_record.c.entity, raw_record.c.side).order_by(first)).all()
    handled = sa.func.coalesce(outbox.c.sent_run_id, outbox.c.run_id)
    sent = sa.func.sum(sa.case((sa.and_(outbox.c.status == "sent", handled == run_id), 1), else_=0))
    first_write = sa.func.min(outbox.c.id)
    written = conn.execute(sa.select(outbox.c.entity, outbox.c.side, sent, first_write).where(
        outbox.c.profile == profile, credited(run_id)).group_by(outbox.c.entity, outbox.c.side)
        .order_by(first_write)).all()
    bad = dict(conn.execute(sa.select(quarantine.c.entity, sa.func.count()).where(
        quarantine.c.profile == profile, quarantine.c.run_id == run_id).group_by(quarantine.c.entity)).all())
    counted = [entity for by_side in read.values() if by_side for entity, n in by_side.items() if n]
    entities = dict.fromkeys([r.entity for r in landed] + [w.entity for w in written] + counted)
    result = {}
    for entity in entities:
        def extracted(side: str) -> int:
            if read.get(side) is not None:
                return read[side].get(entity, 0)
            return sum(r[2] for r in landed if r.entity == entity and r.side == side)

        result[entity] = {
            **{f"extracted_{side}": extracted(side) for side in SIDES},
            **{f"sent_to_{side}": int(sum(w[2] or 0 for w in written if w.entity == entity and w.side == side))
               for side in SIDES},
            "quarantined": bad.get(entity, 0),
        }
    return result

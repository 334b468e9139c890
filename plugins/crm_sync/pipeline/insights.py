"""The insights page's five lists over the person models, each filtered, counted and paged in SQL.

An analyst's questions, answered from ``person`` and ``person_activity`` (docs/warehouse-models.md: what each
column means): tasks overdue, leads whose first-call task is not completed after the profile's
``insights.first_call_hours``, appointments this week (Monday to Sunday in the profile's zone),
people in one system only, people waiting for review (with reconcile's reason). A big location
has 100,000 people and half a million activities: a page reads one page of ids with the filtered
total in one pass (a window count, as crm_sync.pipeline.report_pages does), then that page's rows
by id; the CSV export asks for every row the filter matches.

The text filter folds a query as the people search does (crm_sync.pipeline.people_search_keys)
and matches the person's names, emails and phones, and an activity's title.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa

from crm_sync.pipeline.people_pages import search_filter
from crm_sync.pipeline.report_pages import contains, page_span
from crm_sync.profile import Profile
from crm_sync.timezones import to_instant, utcnow
from crm_sync.warehouse.tables import person, person_activity, review_candidate

LISTS = {"overdue": "Overdue tasks", "first_call": "Leads without a completed first call",
         "this_week": "Appointments this week", "one_side": "People in one system only",
         "review": "People waiting for review"}
PER_PAGE, PER_PAGE_MAX = 50, 500
E164 = re.compile(r"\+[0-9]{6,15}")  # a phone as the models keep it, not a formula
ACTIVITY_SIDES = ("ghl", "app", "both")
# Per list, the filters beside the text search it takes, and the values each may have (None: any text).
FILTERS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "overdue": {"side": ACTIVITY_SIDES},
    "first_call": {"status": ("open", "missing")},
    "this_week": {"side": ACTIVITY_SIDES, "status": None},
    "one_side": {"status": ("ghl_only", "app_only")},
    "review": {},
}
PERSON = ("person_id", "name", "email", "phone")
# Per list, its columns: (key, heading, a moment shown in the profile's zone).
COLUMNS: dict[str, list[tuple[str, str, bool]]] = {
    "overdue": [("title", "task", False), ("at_utc", "due", True), ("sides", "in", False),
                ("ghl_id", "GHL task", False), ("app_id", "app task", False)],
    "first_call": [("first_seen", "first seen", True), ("task_status", "first-call task", False),
                   ("task_due", "due", True), ("status", "person status", False)],
    "this_week": [("title", "appointment", False), ("at_utc", "starts", True), ("activity_status", "status", False),
                  ("sides", "in", False), ("ghl_id", "GHL appointment", False), ("app_id", "app appointment", False)],
    "one_side": [("status", "only in", False), ("ghl_id", "GHL contact", False), ("app_id", "app contact", False),
                 ("first_seen", "first seen", True), ("changed_at", "last change", True)],
    "review": [("ghl_id", "GHL contact", False), ("app_id", "app contact", False), ("first_seen", "first seen", True),
               ("reasons", "why it waits", False)],
}


class UnknownList(ValueError):
    """A list name the insights page does not have."""


@dataclass(frozen=True)
class InsightQuery:
    """What one list shows: a text search ``q``, a ``status`` and a ``side`` (where the list takes
    them: FILTERS; an unknown value is no filter), the ``page``. Out of range pages and sizes are
    brought in range, as the report's are."""

    q: str | None = None
    status: str | None = None
    side: str | None = None
    page: int = 1
    per_page: int = PER_PAGE

    def __post_init__(self) -> None:
        for name in ("q", "status", "side"):
            value = (getattr(self, name) or "").strip()
            object.__setattr__(self, name, value or None)
        object.__setattr__(self, "page", max(1, self.page))
        object.__setattr__(self, "per_page", min(max(1, self.per_page), PER_PAGE_MAX))

    def for_list(self, name: str) -> InsightQuery:
        """This query with the filters ``name`` does not take (or values it does not have) dropped."""
        taken = FILTERS[name]
        changes = {}
        for key in ("status", "side"):
            value = getattr(self, key)
            if value is not None and (key not in taken or (taken[key] is not None and value not in taken[key])):
                changes[key] = None
        return replace(self, **changes) if changes else self

    @property
    def filtered(self) -> bool:
        return any((self.q, self.status, self.side))

    def link(self, **changes: Any) -> str:
        """The query string of this view with ``changes`` (defaults left out): a link to share."""
        wanted = replace(self, **changes)
        defaults = {f.name: f.default for f in fields(self)}
        return urlencode({k: v for k, v in asdict(wanted).items() if v is not None and v != defaults[k]})


@dataclass(frozen=True)
class Moments:
    """The instants the lists are relative to: now, the first-call deadline, this local week."""

    now: datetime
    first_call_before: datetime
    week_start: datetime
    week_end: datetime

    @classmethod
    def of(cls, profile: Profile, now: datetime | None = None) -> Moments:
        now = now or utcnow()
        start, end = week(now, profile.zone)
        return cls(now, now - timedelta(hours=profile.insights.first_call_hours), start, end)


def week(moment: datetime, where: tzinfo) -> tuple[datetime, datetime]:
    """The local week of ``moment`` in ``where``: Monday 00:00 to the next Monday 00:00, as UTC instants."""
    day = moment.astimezone(where).date()
    monday = day - timedelta(days=day.weekday())
    return (to_instant(datetime.combine(monday, time()), where),
            to_instant(datetime.combine(monday + timedelta(days=7), time()), where))


# --- the lists, as SQL ---------------------------------------------------------------------------------

def matches(q: str, profile: Profile, title: sa.ColumnElement | None = None) -> sa.ColumnElement[bool]:
    """``q`` in the person's folded names or emails, their phones (``q`` typed as a phone), or ``title``."""
    said = search_filter(profile, q)
    return said if title is None else sa.or_(said, contains(title, q, ignore_case=True))


def _person_columns() -> list[sa.ColumnElement]:
    return [person.c.person_id, person.c.first_name, person.c.last_name, person.c.email, person.c.phone]


def _activities(profile: Profile, entity: str, query: InsightQuery, *where: sa.ColumnElement[bool],
                rows: bool = True) -> sa.Select:
    """Activities of one entity; with their person's columns for ``rows`` (a count or a page's ids
    joins the person only to search: thousands of lookups fewer)."""
    pa = person_activity.c
    columns = [pa.activity_id, pa.title, pa.at_utc, pa.sides, pa.ghl_id, pa.app_id, pa.status.label("activity_status")]
    select = sa.select(*columns).where(pa.profile == profile.name, pa.entity == entity, *where)
    if rows or query.q:
        select = (select.add_columns(*_person_columns())
                  .select_from(person_activity.outerjoin(person, person.c.person_id == pa.person_id)))
    if query.side:
        select = select.where(pa.sides == query.side)
    if query.q:
        select = select.where(matches(query.q, profile, pa.title))
    return select


def _first_calls(profile: Profile) -> list[sa.ColumnElement[bool]]:
    """First-call tasks of the profile (any task when it names no title), case aside."""
    pa = person_activity.c
    task = profile.first_call
    calls = [pa.profile == profile.name, pa.entity == "task"]
    return calls + [sa.func.lower(pa.title) == task.title.lower()] if task else calls


def _first_call_tasks(profile: Profile) -> sa.ColumnElement[bool]:
    """A first-call task of the outer query's person."""
    return sa.and_(person_activity.c.person_id == person.c.person_id, *_first_calls(profile))


def _first_call_task(profile: Profile, status: str, column: sa.ColumnElement) -> sa.ScalarSelect:
    return (sa.select(column).where(_first_call_tasks(profile), person_activity.c.status == status)
            .correlate(person).scalar_subquery())


def _persons(profile: Profile, query: InsightQuery, *where: sa.ColumnElement[bool]) -> sa.Select:
    p = person.c
    select = sa.select(*_person_columns(), p.ghl_id, p.app_id, p.status, p.first_seen, p.ghl_changed_at,
                       p.app_changed_at).where(p.profile == profile.name, *where)
    if query.status:  # one_side's: ghl_only or app_only (InsightQuery.for_list keeps no other)
        select = select.where(p.status == query.status)
    if query.q:
        select = select.where(matches(query.q, profile))
    return select


def _first_call(profile: Profile, query: InsightQuery, at: Moments) -> sa.Select:
    """People first seen before the deadline, not deleted, with no completed first-call task; only
    those the task is for (its ``only_if`` field set) when it is one of the profile's new-contact tasks."""
    pa = person_activity.c
    # NOT IN, not NOT EXISTS: PostgreSQL hashes the set whatever it guesses of lower(title) (with no
    # statistics on it, it guessed one row and probed the index once per person: 0.6 s at 100,000)
    completed = person.c.person_id.in_(sa.select(pa.person_id).where(
        *_first_calls(profile), pa.status == "completed", pa.person_id.is_not(None)))
    open_one = sa.exists().where(_first_call_tasks(profile), pa.status == "open")
    where = [person.c.first_seen < at.first_call_before, person.c.status != "deleted"]
    task = profile.first_call
    if task and task.only_if and task.only_if in person.c and task.only_if != "tags":
        column = person.c[task.only_if]
        where += [column.is_not(None), column != ""]
    where.append(~completed)  # last: SQLite tests the conditions in this order, the cheap ones first
    if query.status == "open":
        where.append(open_one)
    elif query.status == "missing":
        where.append(~open_one)
    return _persons(profile, replace(query, status=None), *where)


def _select(name: str, profile: Profile, query: InsightQuery, at: Moments, rows: bool = True
            ) -> tuple[sa.Select, sa.Column, tuple]:
    """A list's rows (no order; not ``rows``: enough to count them and page their ids), its key, its order."""
    pa, p = person_activity.c, person.c
    if name == "overdue":
        select = _activities(profile, "task", query, pa.status == "open", pa.at_utc < at.now, rows=rows)
        return select, pa.activity_id, (pa.at_utc, pa.activity_id)
    if name == "this_week":
        where = [pa.at_utc >= at.week_start, pa.at_utc < at.week_end,
                 sa.or_(pa.status.is_(None), pa.status != "deleted")]
        if query.status:
            where.append(sa.func.lower(pa.status) == query.status.lower())
        select = _activities(profile, "appointment", query, *where, rows=rows)
        return select, pa.activity_id, (pa.at_utc, pa.activity_id)
    if name == "first_call":
        return _first_call(profile, query, at), p.person_id, (p.first_seen, p.person_id)
    if name == "one_side":
        return _persons(profile, query, p.status.in_(FILTERS["one_side"]["status"])), p.person_id, (p.person_id,)
    if name == "review":
        return _persons(profile, query, p.status == "review"), p.person_id, (p.person_id,)
    raise UnknownList(f"no insights list {name!r}; expected one of {', '.join(LISTS)}")


def _with_details(select: sa.Select, name: str, profile: Profile) -> sa.Select:
    """The columns a shown row adds to its list's select: a first call's task, as correlated subqueries."""
    if name != "first_call":
        return select
    pa = person_activity.c
    return select.add_columns(
        _first_call_task(profile, "open", sa.func.min(pa.at_utc)).label("task_due"),
        _first_call_task(profile, "open", sa.func.count()).label("open_tasks"))


def _by_ids(name: str, profile: Profile, key: sa.Column, ids: list[int]) -> sa.Select:
    """The rows of a page, by id: the list's columns without its conditions (tested once already)."""
    every = InsightQuery()
    entity = {"overdue": "task", "this_week": "appointment"}.get(name)
    select = _activities(profile, entity, every) if entity else _persons(profile, every)
    return _with_details(select, name, profile).where(key.in_(ids))


# --- reading them ------------------------------------------------------------------------------------------

def counts(conn: sa.Connection, profile: Profile, now: datetime | None = None,
           known: dict[str, int] | None = None) -> dict[str, int]:
    """How many rows each list holds, unfiltered (one count each; ``known``: lists already counted)."""
    at, every = Moments.of(profile, now), InsightQuery()
    found = dict(known or {})
    for name in LISTS:
        if name not in found:
            select = _select(name, profile, every, at, rows=False)[0]
            found[name] = conn.execute(select.with_only_columns(sa.func.count())).scalar_one()
    return {name: found[name] for name in LISTS}


def listed(conn: sa.Connection, profile: Profile, name: str, query: InsightQuery | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    """One page of list ``name``: ``rows`` (each a dict, moments as UTC datetimes), ``span`` (which rows
    of how many match the filters; a page past the end shows the last), and the ``query`` honoured."""
    want = (query or InsightQuery()).for_list(name)
    at = Moments.of(profile, now)
    select, key, order = _select(name, profile, want, at, rows=False)
    total_over = sa.func.count().over().label("total")
    narrow = select.with_only_columns(key, total_over).order_by(*order)

    def page_of(page: int) -> tuple[list[int], int]:
        found = conn.execute(narrow.limit(want.per_page).offset(want.per_page * (page - 1))).all()
        return [row[0] for row in found], found[0].total if found else 0

    ids, total = page_of(want.page)
    if not ids and want.page > 1:
        total = conn.execute(sa.select(sa.func.count()).select_from(select.subquery())).scalar_one()
        span = page_span(total, want.page, want.per_page)
        ids, total = page_of(span["page"]) if total else ([], 0)
    span = page_span(total, want.page, want.per_page)
    rows = _rows(conn, name, profile, _by_ids(name, profile, key, ids)) if ids else []
    position = {key_id: n for n, key_id in enumerate(ids)}
    rows.sort(key=lambda row: position[row["_key"]])
    return {"name": name, "title": LISTS[name], "rows": rows, "span": span, "query": want}


def every_row(conn: sa.Connection, profile: Profile, name: str, query: InsightQuery | None = None,
              now: datetime | None = None) -> list[dict[str, Any]]:
    """Every row of list ``name`` the filters match (paging ignored), in the list's order: the CSV export."""
    want = (query or InsightQuery()).for_list(name)
    select, _key, order = _select(name, profile, want, Moments.of(profile, now))
    return _rows(conn, name, profile, _with_details(select, name, profile).order_by(*order))


def _rows(conn: sa.Connection, name: str, profile: Profile, select: sa.Select) -> list[dict[str, Any]]:
    rows = [_row(name, found._mapping) for found in conn.execute(select)]
    if name == "review":
        _attach_reasons(conn, profile, rows)
    return rows


def _row(name: str, found: Any) -> dict[str, Any]:
    row = dict(found)
    first, last = row.pop("first_name") or "", row.pop("last_name") or ""
    row["name"] = f"{first} {last}".strip() or None
    row["_key"] = row["activity_id"] if "activity_id" in row else row["person_id"]
    if name == "first_call":
        row["task_status"] = "open" if row.pop("open_tasks") else "missing"
    if name == "one_side":
        row["changed_at"] = row["ghl_changed_at"] if row["status"] == "ghl_only" else row["app_changed_at"]
    return row


def _attach_reasons(conn: sa.Connection, profile: Profile, rows: list[dict[str, Any]], chunk: int = 500) -> None:
    """Each person's review candidates, as "ghl:<id> / app:<id>: <reason>", read for ``chunk`` persons at once."""
    rc = review_candidate.c
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        ghl_ids = [row["ghl_id"] for row in part if row["ghl_id"]]
        app_ids = [row["app_id"] for row in part if row["app_id"]]
        found = conn.execute(sa.select(rc.ghl_id, rc.app_id, rc.reason).where(
            rc.profile == profile.name, sa.or_(rc.ghl_id.in_(ghl_ids), rc.app_id.in_(app_ids)))
            .order_by(rc.ghl_id, rc.app_id)).all()
        for row in part:
            row["reasons"] = "; ".join(f"ghl:{c.ghl_id} / app:{c.app_id}: {c.reason}" for c in found
                                       if (row["ghl_id"] and c.ghl_id == row["ghl_id"])
                                       or (row["app_id"] and c.app_id == row["app_id"]))


def statuses_this_week(conn: sa.Connection, profile: Profile, now: datetime | None = None) -> list[str]:
    """The appointment statuses of this week's appointments: the status filter's choices."""
    at = Moments.of(profile, now)
    pa = person_activity.c
    found = conn.execute(sa.select(sa.func.lower(pa.status)).distinct().where(
        pa.profile == profile.name, pa.entity == "appointment", pa.at_utc >= at.week_start,
        pa.at_utc < at.week_end, pa.status.is_not(None), pa.status != "deleted")).scalars()
    return sorted(found)


def csv_lines(rows: list[dict[str, Any]], name: str, where: tzinfo) -> Iterator[list[str]]:
    """The CSV of a list: a header naming the zone of its times, then each row, times as local ISO 8601."""
    zone_name = getattr(where, "key", None) or str(where)
    columns = [(key, key) for key in PERSON] + [(key, label) for key, label, _ in COLUMNS[name]]
    moments = {key for key, _, is_moment in COLUMNS[name] if is_moment}
    yield [f"{label} ({zone_name})" if key in moments else label for key, label in columns]
    for row in rows:
        yield [_cell(row.get(key), where) if key in moments else _text(row.get(key)) for key, _ in columns]


def _text(value: Any) -> str:
    """A value as a spreadsheet shows it, never as a formula: names and titles come from the two systems
    (a web form's lead can write anything), so one that starts like a formula gets a leading quote
    (OWASP's CSV injection advice); an E.164 phone stays as it is."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not E164.fullmatch(text):
        return "'" + text
    return text


def _cell(moment: datetime | None, where: tzinfo) -> str:
    return "" if moment is None else moment.astimezone(where).isoformat(timespec="minutes")

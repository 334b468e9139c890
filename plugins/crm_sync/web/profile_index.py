"""The console's index at a thousand profiles (issue 26): which rows a view shows, and what they show.

A row is a profile the user may read, or an agency's location that does not sync (waiting for its
app connection, or uninstalled: the agency's book, read as read_book reads it but on the request's
connection), shown where its location would be. Rows are searched (``q``: profile name, DAG id, app,
GHL location id or name, connection; case and accents aside), filtered (``show``: syncing, waiting,
uninstalled, excluded; ``location``: one heading), grouped by GHL location (``ghl.location_id``, else the GHL
connection) and paged in Python over the parsed profiles, without a query. Only then is the
warehouse read, for the shown page alone and in set-based queries whatever the page's size: the
newest runs of its profiles (two: crm_sync.pipeline.run_list.newest_runs_of), their review counts
(one), today's GHL calls of its locations (one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from crm_sync.web import charts, services

if TYPE_CHECKING:
    from crm_sync.profile import Profile
    from crm_sync.profile_agency import DiscoveredLocation

PER_PAGE = 50
SHOW = ("syncing", "waiting", "uninstalled", "excluded")  # excluded: installed, ready, not in agency.only


@dataclass(frozen=True)
class Row:
    """One line of the index: a profile, or an agency location that does not sync."""

    place: str  # the heading it goes under: a GHL location id, else a GHL connection
    sort: str
    profile: Profile | None = None
    location: DiscoveredLocation | None = None
    agency: str = ""  # the agency profile that discovered ``location``
    excluded: bool = False  # ``location`` would sync but is not in its agency's ``agency.only``

    @property
    def status(self) -> str:
        if self.location is None:
            return "syncing"
        return "excluded" if self.excluded else self.location.status


@dataclass
class Place:
    """A heading: a GHL location (or connection) and its rows on this page."""

    key: str
    kind: str  # "location" or "connection"
    name: str
    rows: list[Row] = field(default_factory=list)
    continued: bool = False  # its first rows are on the page before
    budget: dict[str, Any] | None = None


def profiles_and_books(conn: sa.Connection) -> tuple[list[Profile], list[tuple[Profile, list[DiscoveredLocation]]]]:
    """Every usable profile, by DAG id, as crm_sync.web.services.profiles lists them, and each agency
    profile with its book, read once on the request's connection (crm_sync.profile_agency.book_of)
    for both: its syncing locations' profiles and the rows of those that do not sync."""
    from crm_sync.locations import for_discovered, per_location, syncs
    from crm_sync.profile_agency import book_of

    every: list[Profile] = []
    books = []
    for parsed in services.profile_files():
        if parsed.agency is None:
            every += per_location(parsed)
            continue
        book = book_of(conn, parsed.name)
        books.append((parsed, book))
        every += [for_discovered(parsed, where) for where in book if syncs(parsed, where)]
    return sorted(every, key=lambda p: p.dag_id), books


def agency_rows(books: list[tuple[Profile, list[DiscoveredLocation]]], readable: set[str]
                ) -> tuple[dict[str, str], list[Row]]:
    """The names of the agencies' discovered locations (by location id), and a row for each location
    that does not sync (waiting for its app connection, uninstalled, not in ``agency.only``: still
    listed, as docs/operations.md says), for a user who may read the
    agency's own discovery DAG: its book is the agency's, not one location's (a user who may read one
    location's DAG, or a DAG whose id merely starts like the agency's, sees none of its siblings)."""
    from crm_sync.agency_dag import discover_dag_id
    from crm_sync.locations import syncs

    names: dict[str, str] = {}
    rows: list[Row] = []
    for agency, book in books:
        names.update({where.location_id: where.name for where in book if where.name})
        if discover_dag_id(agency) in readable:
            rows += [Row(where.location_id, where.key, location=where, agency=agency.name,
                         excluded=where.status == "syncing") for where in book if not syncs(agency, where)]
    return names, rows


def _words(row: Row, names: dict[str, str]) -> str:
    """What a search looks in, folded (crm_sync.web.services.folded)."""
    if row.profile is not None:
        p = row.profile
        said = (p.name, p.dag_id, p.app.kind, p.app.conn_id or "", p.ghl.conn_id, p.ghl.location_id or "",
                names.get(row.place, ""))
    else:
        w = row.location
        said = (row.agency, w.location_id, w.key, w.name, w.app_conn_id or "", row.status)
    return services.folded(" ".join(said))


def select_rows(shown: list[Profile], extra: list[Row], names: dict[str, str], q: str = "", show: str = "",
                location: str = "") -> list[Row]:
    """Every row the view shows, by heading (case aside: GHL's ids are mixed case), then profile name
    (the rows of a location keep together)."""
    rows = [Row(services.place_of(p), p.name, profile=p) for p in shown] + extra
    if show:
        rows = [row for row in rows if row.status == show]
    if location:
        rows = [row for row in rows if row.place == location]
    wanted = services.folded(q.strip())
    if wanted:
        rows = [row for row in rows if wanted in _words(row, names)]
    return sorted(rows, key=lambda row: (row.place.casefold(), row.place, row.sort))


def index_page(conn: sa.Connection, rows: list[Row], every: list[Profile], names: dict[str, str], page: int,
               per_page: int = PER_PAGE) -> dict[str, Any]:
    """The page ``page`` of ``rows``: its headings with their rows, and what its profiles show (newest
    run, its last runs' charts, review counts, today's GHL calls of its locations), read for this page."""
    from crm_sync.pipeline.report_pages import page_span
    from crm_sync.pipeline.run_list import newest_runs_of

    span = page_span(len(rows), page, per_page)
    mine = rows[span["first"] - 1:span["last"]] if rows else []
    profiles = [row.profile for row in mine if row.profile is not None]
    runs = newest_runs_of(conn, profiles, charts.RUNS_CHARTED)
    pending = services.pending_counts(conn, profiles)
    budgets = {where["place"]: charts.budget_gauge(where) for where in services.ghl_calls_today(conn, profiles, every)}
    before = rows[span["first"] - 2].place if span["first"] > 1 else None
    places = []
    for key, together in groupby(mine, key=lambda row: row.place):
        members = list(together)
        kind = "connection" if all(r.profile is not None and not r.profile.ghl.location_id for r in members) \
            else "location"
        places.append(Place(key, kind, names.get(key, ""), members, continued=key == before, budget=budgets.get(key)))
    latest = {p.dag_id: (runs[p.name] or [None])[0] for p in profiles}
    pictures = {p.dag_id: charts.runs_charts(runs[p.name], p.zone) for p in profiles if runs[p.name]}
    return {"span": span, "places": places, "latest": latest, "pictures": pictures, "pending": pending}

"""Which records a run touched, so the analysts' models (crm_sync.pipeline.people_models) refresh only
those: what the run staged, quarantined, planned or sent, the review queue's records, people still
marked as waiting for review, and activities whose person was not known yet. A profile's first
refresh (no person row yet) takes everyone.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crm_sync.pipeline.context import RunContext
from crm_sync.warehouse.tables import (outbox, person, person_activity, quarantine, review_candidate,
                                       staging_contact, staging_record, xref)

CHILDREN = ("task", "note", "appointment")
CHUNK = 5_000  # values per IN list: well under SQLite's bind limit


def chunks(values: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def rows_in(conn: sa.Connection, query: sa.Select, column: sa.ColumnElement, values: Iterable[Any]) -> list[sa.Row]:
    """``query`` restricted to ``column IN values``, a statement per chunk (none for no values)."""
    return [row for part in chunks(set(values)) for row in conn.execute(query.where(column.in_(part)))]


def by_side_ids(conn: sa.Connection, query: sa.Select, table: sa.Table, keys: dict[str, set[str]]) -> list[sa.Row]:
    """Rows of ``query`` whose ghl_id or app_id is among ``keys``, each once (its first column is the key)."""
    found: dict[Any, sa.Row] = {}
    for side in ("ghl", "app"):
        for row in rows_in(conn, query, table.c[f"{side}_id"], keys[side]):
            found[row[0]] = row
    return list(found.values())


@dataclass
class Scope:
    """The records to refresh: ``full`` (everyone), else ids per side for contacts and per entity and
    side for tasks, notes and appointments."""

    full: bool
    writes: list[sa.Row] = field(default_factory=list)  # this run's outbox rows (planned or sent by it)
    contacts: dict[str, set[str]] = field(default_factory=lambda: {"ghl": set(), "app": set()})
    children: dict[str, dict[str, set[str]]] = field(
        default_factory=lambda: {e: {"ghl": set(), "app": set()} for e in CHILDREN})

    def add(self, entity: str, side: str, source_id: str | None) -> None:
        if source_id is None or side not in ("ghl", "app"):
            return
        if entity == "contact":
            self.contacts[side].add(source_id)
        elif entity in self.children:
            self.children[entity][side].add(source_id)

    def add_link(self, entity: str, ghl_id: str | None, app_id: str | None) -> None:
        self.add(entity, "ghl", ghl_id)
        self.add(entity, "app", app_id)


def insert_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows of the same keys, each value through its column's own bind processing, in one
    driver-level bulk operation: executemany on SQLite, COPY on PostgreSQL (SQLAlchemy's per-row
    parameter handling, and PostgreSQL's parsing of multi-row INSERTs, cost more than the insert itself at
    100,000 rows)."""
    if not rows:
        return
    if conn.dialect.name not in ("sqlite", "postgresql") or conn.dialect.driver not in ("pysqlite", "psycopg2"):
        conn.execute(sa.insert(table), rows)
        return
    names = list(rows[0])
    processors = [table.c[name].type.bind_processor(conn.dialect) for name in names]
    values = [tuple(p(row[n]) if p else row[n] for n, p in zip(names, processors, strict=True)) for row in rows]
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(n) for n in names)
    if conn.dialect.name == "postgresql":
        text = "".join("\t".join(_copy_text(v) for v in row) + "\n" for row in values)
        with conn.connection.dbapi_connection.cursor() as cursor:
            cursor.copy_expert(f"COPY {quote(table.name)} ({columns}) FROM STDIN", io.StringIO(text))
        return
    conn.exec_driver_sql(f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({', '.join('?' for _ in names)})",
                         values)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        value = json.dumps(value)
    return str(value).translate(_COPY_ESCAPES)


def touched(conn: sa.Connection, ctx: RunContext) -> Scope:
    """The records this run touched (see the module's docstring)."""
    name, run = ctx.profile.name, ctx.run_id
    if conn.execute(sa.select(person.c.person_id).where(person.c.profile == name).limit(1)).first() is None:
        return Scope(full=True)
    scope = Scope(full=False)
    for side, source_id in conn.execute(sa.select(staging_contact.c.side, staging_contact.c.source_id).where(
            staging_contact.c.profile == name, staging_contact.c.run_id == run)):
        scope.add("contact", side, source_id)
    for entity, side, source_id in conn.execute(sa.select(
            staging_record.c.entity, staging_record.c.side, staging_record.c.source_id).where(
            staging_record.c.profile == name, staging_record.c.run_id == run)):
        scope.add(entity, side, source_id)
    for entity, side, source_id in conn.execute(sa.select(quarantine.c.entity, quarantine.c.side,
                                                          quarantine.c.source_id).where(
            quarantine.c.profile == name, quarantine.c.run_id == run)):
        scope.add(entity, side, source_id)
    scope.writes = list(conn.execute(sa.select(outbox).where(
        outbox.c.profile == name, sa.or_(outbox.c.run_id == run, outbox.c.sent_run_id == run)).order_by(outbox.c.id)))
    links = {i for w in scope.writes for i in (w.xref_id, w.contact_xref_id) if i}
    for row in rows_in(conn, sa.select(xref.c.entity, xref.c.ghl_id, xref.c.app_id), xref.c.id, links):
        scope.add_link(row.entity, row.ghl_id, row.app_id)
    for row in conn.execute(sa.select(review_candidate.c.ghl_id, review_candidate.c.app_id).where(
            review_candidate.c.profile == name)):
        scope.add_link("contact", row.ghl_id, row.app_id)
    for row in conn.execute(sa.select(person.c.ghl_id, person.c.app_id).where(  # a review since settled
            person.c.profile == name, person.c.status.in_(["review", "quarantined"]))):
        scope.add_link("contact", row.ghl_id, row.app_id)
    for row in conn.execute(sa.select(person_activity.c.entity, person_activity.c.ghl_id,
                                      person_activity.c.app_id).where(
            person_activity.c.profile == name, person_activity.c.person_id.is_(None))):
        scope.add_link(row.entity, row.ghl_id, row.app_id)
    return scope


def persons_of(conn: sa.Connection, profile: str, contacts: dict[str, set[str]] | None
               ) -> dict[tuple[str, str], int]:
    """(side, contact id) -> person_id of the given contact ids that have a person (None: everyone's)."""
    query = sa.select(person.c.person_id, person.c.ghl_id, person.c.app_id).where(person.c.profile == profile)
    rows = conn.execute(query) if contacts is None else by_side_ids(conn, query, person, contacts)
    return {(s, getattr(r, f"{s}_id")): r.person_id for r in rows for s in ("ghl", "app")
            if getattr(r, f"{s}_id") is not None}


def quarantine_rule(rows: list[sa.Row], staged: sa.Row | None, linked: bool) -> str | None:
    """The rule a record's newest version broke, if that version is newer than the one staged (an
    ambiguous match is the review queue's; a keep-apart no longer holds once linked)."""
    rows = [r for r in rows if r.rule != "ambiguous_match" and not (linked and r.rule == "kept_apart")]
    if not rows:
        return None
    latest = max(rows, key=lambda r: (r.raw_id, r.id))
    if staged is not None and (staged.raw_id or 0) > latest.raw_id:
        return None
    return latest.rule

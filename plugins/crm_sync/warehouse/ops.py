"""Dialect-aware writes the pipeline repeats: insert-or-ignore and upsert on a key."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

BATCH = 500


def _insert(conn: sa.Connection, table: sa.Table):
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _batches(rows: Sequence[dict[str, Any]]) -> Iterable[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start:start + BATCH]


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, leaving any row whose key already exists as it is (re-runs add nothing)."""
    for batch in _batches(rows):
        conn.execute(_insert(conn, table).on_conflict_do_nothing(index_elements=list(keys)), batch)


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, or overwrite the non-key columns of the row already under the key."""
    for batch in _batches(rows):
        stmt = _insert(conn, table)
        updates = {c: stmt.excluded[c] for c in batch[0] if c not in keys}
        conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates), batch)


def insert_new(conn: sa.Connection, table: sa.Table, row: dict[str, Any], keys: Sequence[str]) -> bool:
    """Insert one row unless its key exists; True if it was new (atomic: two racing inserts, one True)."""
    return conn.execute(_insert(conn, table).values(**row).on_conflict_do_nothing(index_elements=list(keys))
                        ).rowcount == 1

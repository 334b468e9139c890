"""Every write to staging, in one place. Staging holds the newest good version of each record of
each side: contacts in staging_contact (typed columns), tasks, notes and appointments in
staging_record (canonical fields as JSON). Stage keeps what a side holds, load keeps what a side
answered to our write (so its echo is recognised), validate withdraws rows that failed validation
and reconcile those GHL deleted (so their links go quiet).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

import sqlalchemy as sa

from crm_sync.warehouse.ops import upsert
from crm_sync.warehouse.tables import staging_contact, staging_record


def keep(conn: sa.Connection, contacts: Sequence[dict[str, Any]] = (),
         children: Sequence[dict[str, Any]] = ()) -> None:
    """Staged rows, each overwriting the row already under its key (profile, [entity,] side, source_id)."""
    upsert(conn, staging_contact, contacts, keys=["profile", "side", "source_id"])
    upsert(conn, staging_record, children, keys=["profile", "entity", "side", "source_id"])


def newer_only(conn: sa.Connection, profile: str, contacts: Sequence[dict[str, Any]],
               children: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """The rows not older than what staging holds by the side's own clock (``updated_at``), and how many
    were older. A batch run reads a record, and stages it a task later; the fast lane may have synced
    a newer version in between (and load staged what the side answered). Staging the older read over
    it would make reconcile see a change nobody made, and write an old value back. Rows without a
    time on either side are kept, as before; call inside the transaction that keeps them."""
    def staged_times(table: sa.Table, keyed: Sequence[str]) -> dict[tuple, Any]:
        key_columns = [table.c[name] for name in keyed]
        return {tuple(row[:-1]): row[-1] for row in conn.execute(
            sa.select(*key_columns, table.c.updated_at).where(table.c.profile == profile,
                                                             table.c.updated_at.is_not(None)))}

    def fresh(rows: Sequence[dict[str, Any]], table: sa.Table, keyed: Sequence[str]) -> list[dict[str, Any]]:
        if not rows:
            return []
        staged = staged_times(table, keyed)
        return [row for row in rows if not _older(row.get("updated_at"), staged.get(tuple(row[k] for k in keyed)))]

    kept_contacts = fresh(contacts, staging_contact, ("side", "source_id"))
    kept_children = fresh(children, staging_record, ("entity", "side", "source_id"))
    return kept_contacts, kept_children, len(contacts) + len(children) - len(kept_contacts) - len(kept_children)


def _older(moment: Any, staged: Any) -> bool:
    if moment is None or staged is None:
        return False
    as_utc = [m if m.tzinfo else m.replace(tzinfo=UTC) for m in (moment, staged)]
    return as_utc[0] < as_utc[1]


def withdraw(conn: sa.Connection, profile: str, entity: str, side: str, source_ids: Iterable[str]) -> None:
    """Take one side's records of an entity out of staging: reconcile never sees them again."""
    table = staging_contact if entity == "contact" else staging_record
    where = [table.c.profile == profile, table.c.side == side, table.c.source_id.in_(list(source_ids))]
    if table is staging_record:
        where.append(staging_record.c.entity == entity)
    conn.execute(sa.delete(table).where(*where))

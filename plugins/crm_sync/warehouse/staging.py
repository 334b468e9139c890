"""Every write to staging, in one place. Staging holds the newest good version of each record of
each side: contacts in staging_contact (typed columns), tasks, notes and appointments in
staging_record (canonical fields as JSON). Stage keeps what a side holds, load keeps what a side
answered to our write (so its echo is recognised), validate withdraws rows that failed validation
and reconcile those GHL deleted (so their links go quiet).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from crm_sync.warehouse.ops import upsert
from crm_sync.warehouse.tables import staging_contact, staging_record


def keep(conn: sa.Connection, contacts: Sequence[dict[str, Any]] = (),
         children: Sequence[dict[str, Any]] = ()) -> None:
    """Staged rows, each overwriting the row already under its key (profile, [entity,] side, source_id)."""
    upsert(conn, staging_contact, contacts, keys=["profile", "side", "source_id"])
    upsert(conn, staging_record, children, keys=["profile", "entity", "side", "source_id"])


def withdraw(conn: sa.Connection, profile: str, entity: str, side: str, source_ids: Iterable[str]) -> None:
    """Take one side's records of an entity out of staging: reconcile never sees them again."""
    table = staging_contact if entity == "contact" else staging_record
    where = [table.c.profile == profile, table.c.side == side, table.c.source_id.in_(list(source_ids))]
    if table is staging_record:
        where.append(staging_record.c.entity == entity)
    conn.execute(sa.delete(table).where(*where))

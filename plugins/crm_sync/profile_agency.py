"""The profile's ``agency`` section (issue 26): one agency-level GHL install syncs every sub-account
(location) it is installed on, each with its own DAG, found by discovery instead of listed by hand.

Discovery (a task, ``crm_sync.pipeline.discover``) lists the installed locations through GHL and
keeps them in the warehouse table ``agency_location``. Parsing the DAG files reads that table, never
GHL (``read_book``); when the warehouse cannot be read, the last book read is used from a snapshot
file, so a database blip does not make every location's DAG vanish.
"""

from __future__ import annotations

import json
import logging
import os
import string
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

from pydantic import Field, field_validator

from crm_sync.paths import data_home
from crm_sync.profile_base import Strict

log = logging.getLogger(__name__)

PLACEHOLDERS = ("{location_id}", "{key}")


class Agency(Strict):
    """An agency install: its connection, and how each discovered location finds its app connection."""

    conn_id: str = Field(description="the agency's GHL connection: OAuth client id and secret, the agency's "
                         "refresh token (user_type Company), company_id and app_id in its extra")
    app_conn_id: str = Field(description="naming rule of each location's app connection, e.g. gymdesk_{location_id} "
                             "({location_id}: GHL's id; {key}: its lowercase key)")
    app_connections: dict[str, str] = Field(default_factory=dict,
                                            description="location id -> app connection, before the naming rule")
    discover_schedule: str = Field("*/30 * * * *", description="cron of the discovery DAG <dag_id>_discover")
    pool: str | None = Field(None, description="Airflow pool every discovered location's GHL tasks share; "
                             "default crm_sync_<conn_id>")
    pool_slots: int = Field(16, ge=1, description="slots of that pool: how many locations call GHL at once")
    only: list[str] = Field(default_factory=list, description="location ids to sync; empty: every installed one")

    @field_validator("app_conn_id")
    @classmethod
    def _rule(cls, rule: str) -> str:
        try:
            named = {field for _, field, spec, conv in string.Formatter().parse(rule) if field is not None
                     for field in [field + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "")]}
        except ValueError as error:  # a stray { or }
            raise ValueError(f"agency.app_conn_id {rule!r} is not a naming rule ({error}); use {{location_id}} "
                             "or {key}, and no other braces") from None
        if unknown := sorted(named - {"location_id", "key"}):
            raise ValueError(f"agency.app_conn_id {rule!r} names {unknown}: only {{location_id}} and {{key}} "
                             "are known")
        if not any(placeholder in rule for placeholder in PLACEHOLDERS):
            raise ValueError(f"agency.app_conn_id {rule!r} names one connection for every location; "
                             "use {location_id} or {key} in it, or list agency.app_connections")
        return rule

    @property
    def pool_name(self) -> str:
        return self.pool or f"crm_sync_{self.conn_id}"

    def app_conn_for(self, location_id: str, key: str) -> str:
        """The location's app connection: the mapping's, else the naming rule's."""
        return self.app_connections.get(location_id) or self.app_conn_id.format(location_id=location_id, key=key)


@dataclass(frozen=True)
class DiscoveredLocation:
    """One row of ``agency_location``: what the last discovery knew of a location."""

    profile: str
    location_id: str
    key: str
    name: str
    installed: bool
    app_conn_id: str | None
    app_conn_ready: bool
    first_seen_at: datetime
    checked_at: datetime
    uninstalled_at: datetime | None = None
    address: str | None = None
    installed_at: datetime | None = None
    last_seen_at: datetime | None = None

    @property
    def status(self) -> str:
        """syncing, waiting (for its app connection) or uninstalled."""
        if not self.installed:
            return "uninstalled"
        return "syncing" if self.app_conn_ready else "waiting"


def read_book(profile: str) -> list[DiscoveredLocation]:
    """Every location discovered for the agency ``profile``, ordered by key, from the warehouse (read
    only, no migration: parsing must not change the schema), else from the last snapshot."""
    from crm_sync.warehouse.db import warehouse_url

    url = ""
    try:
        url = warehouse_url()
        book = _read_warehouse(url, profile)
        if book is None:  # no table: never migrated, or not the warehouse discovery wrote to
            book = _read_snapshot(profile)
            if book:
                log.warning("agency profile %s: the warehouse reached has no agency_location table, yet a "
                            "discovery wrote %d location(s) before; using them (is WAREHOUSE_URL or the "
                            "warehouse_default connection right where the DAGs are parsed?)", profile, len(book))
            return book
    except Exception as error:  # noqa: BLE001 - parsing must never fail for the warehouse: the snapshot
        book = _read_snapshot(profile)
        log.warning("agency profile %s: the warehouse cannot be read (%s); using the last book read: %d "
                    "location(s)", profile, _describe(error, url), len(book))
        return book
    _write_snapshot(profile, book)
    return book


def read_location(profile: str, key: str) -> DiscoveredLocation | None:
    """The one location ``key`` of the agency ``profile``, at task time (a task's profile, by name): one
    row (``WHERE profile AND key``) through the task's warehouse engine, not the whole book nor its
    snapshot rewritten, so a task costs the same with ten locations or thousands. The warehouse
    unreadable: the location as the last snapshot has it."""
    import sqlalchemy as sa

    from crm_sync.warehouse.tables import agency_location

    try:
        from crm_sync.warehouse.db import engine

        with engine().connect() as conn:
            found = conn.execute(sa.select(agency_location).where(
                agency_location.c.profile == profile, agency_location.c.key == key)).mappings().first()
        return _location(found) if found is not None else None
    except Exception as error:  # noqa: BLE001 - any failure to read: the snapshot, as at parse
        log.warning("agency profile %s: the warehouse cannot be read (%s); location %s as the last book read "
                    "has it", profile, type(error).__name__, key)
        return next((row for row in _read_snapshot(profile) if row.key == key), None)


def snapshot_path(profile: str) -> Path:
    """The last book read of ``profile``: what parsing falls back on when the warehouse is down."""
    return snapshot_folder() / f"{profile}.json"


def snapshot_folder() -> Path:
    """Where every agency's last book read is kept (a file changes only when its book did)."""
    return data_home() / "agency"


def _read_warehouse(url: str, profile: str) -> list[DiscoveredLocation] | None:
    import sqlalchemy as sa

    from crm_sync.warehouse import db
    from crm_sync.warehouse.tables import agency_location

    engine = db.create(_with_connect_timeout(url))
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(agency_location.name):
                return None
            return book_of(conn, profile)
    finally:
        engine.dispose()


def book_of(conn, profile: str) -> list[DiscoveredLocation]:
    """The agency ``profile``'s rows of ``agency_location`` on an open connection, ordered by key."""
    import sqlalchemy as sa

    from crm_sync.warehouse.tables import agency_location

    rows = conn.execute(sa.select(agency_location).where(agency_location.c.profile == profile)
                        .order_by(agency_location.c.key)).mappings()
    return [_location(row) for row in rows]


def _location(row) -> DiscoveredLocation:
    """A row of ``agency_location`` (a mapping) as a DiscoveredLocation; columns it does not know aside."""
    names = {field.name for field in fields(DiscoveredLocation)}
    return DiscoveredLocation(**{name: value for name, value in row.items() if name in names})


def _with_connect_timeout(url: str) -> str:
    """A PostgreSQL warehouse that does not answer costs a parse seconds, not minutes."""
    if url.startswith("postgresql") and "connect_timeout" not in url:
        return url + ("&" if "?" in url else "?") + "connect_timeout=5"
    return url


def _describe(error: BaseException, url: str) -> str:
    """The error's kind and first line, without the SQL, its parameters or the URL's password."""
    cause = getattr(error, "orig", None) or error
    first = (str(cause).strip().splitlines() or [""])[0][:200]
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password if url else None
    except Exception:  # an unparsable URL: say nothing of it
        password = None
    return f"{type(cause).__name__}: {first.replace(password, '***') if password else first}"


def _write_snapshot(profile: str, book: list[DiscoveredLocation]) -> None:
    path = snapshot_path(profile)
    names = [field.name for field in fields(DiscoveredLocation)]
    plain = [{name: _plain(getattr(row, name)) for name in names} for row in book]  # asdict deep-copies: slow
    text = json.dumps(plain, separators=(",", ":"))
    try:
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return  # unchanged: most parses write nothing
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)  # a parse in another process reads the old snapshot or the new, never half
    except OSError as error:
        log.warning("agency profile %s: the book's snapshot %s cannot be written (%s)", profile, path, error)


def _plain(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _read_snapshot(profile: str) -> list[DiscoveredLocation]:
    path = snapshot_path(profile)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        log.warning("agency profile %s: the book's snapshot %s cannot be read (%s)", profile, path, error)
        return []
    dates = {"first_seen_at", "checked_at", "uninstalled_at", "installed_at", "last_seen_at"}
    names = {field.name for field in fields(DiscoveredLocation)}
    try:  # a field another version added is left aside; anything else wrong in it: no snapshot
        return [DiscoveredLocation(**{key: datetime.fromisoformat(value) if key in dates and value else value
                                      for key, value in row.items() if key in names}) for row in rows]
    except Exception as error:  # noqa: BLE001 - parsing must never fail for a snapshot
        log.warning("agency profile %s: the book's snapshot %s cannot be read (%s: %s)", profile, path,
                    type(error).__name__, str(error)[:200])
        return []

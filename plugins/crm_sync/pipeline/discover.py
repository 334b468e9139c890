"""Discovery: the locations an agency install reaches, kept in the warehouse's book (``agency_location``).

The discovery DAG's one task (``crm_sync.agency_dag``) lists where the agency's app is installed
(GHL's ``/oauth/installedLocations`` through ``AgencyHook``) and refreshes the agency's rows: a new
location gets its key (GHL's id in lower case; kept once given), one no longer listed as installed is
marked uninstalled (once: ``uninstalled_at`` is when discovery first missed it) and comes back if the
app is installed again, and each location's app connection (by ``agency.app_connections`` or the
naming rule) is looked up: missing, the location is waiting for it and fails nothing. Parsing the DAG
files reads this book (``profile_agency.read_book``) and never GHL.

One listing missing a location proves nothing: skip/limit paging shifts when the app is installed or
uninstalled elsewhere during the listing. A location the book has as installed and the listing missed
is asked of GHL once more, by its id (``AgencyHook.installed_location``); only one listed there as not
installed, or not listed at all, is marked uninstalled.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from crm_sync.profile import Profile, profile_by_name
from crm_sync.profile_agency import book_of
from crm_sync.warehouse.tables import agency_location

log = logging.getLogger(__name__)


def discover(profile_name: str) -> dict[str, int]:
    """List the agency's installed locations and refresh its book; the counts of what it found."""
    from crm_sync.hooks.agency import AgencyHook
    from crm_sync.warehouse.db import engine

    profile = profile_by_name(profile_name)
    if profile.agency is None:
        raise ValueError(f"profile {profile_name} has no agency section: there is nothing to discover")
    with engine().connect() as conn:
        installed_before = {row[0] for row in conn.execute(sa.select(agency_location.c.location_id).where(
            agency_location.c.profile == profile.name, agency_location.c.installed.is_(True)))}
    hook = AgencyHook(profile.agency.conn_id)
    try:
        listed = confirmed(list(hook.installed_locations()), installed_before, hook.installed_location)
    finally:
        hook.close()
    with engine().begin() as conn:
        counts = refresh_book(conn, profile, listed, connection_exists)
    with engine().begin() as conn:
        counts["retention_runs"] = retain_not_syncing(conn, profile)
    return counts


def retain_not_syncing(conn: sa.Connection, profile: Profile) -> int:
    """Retention (crm_sync.pipeline.retention.cleanup) for each book location that does not sync now
    (uninstalled, waiting for its app connection, outside ``agency.only``), with that location's
    profile: its DAG, whose report step runs retention, is gone, yet its warehouse rows age all the
    same. A location that syncs is cleaned by its own runs. How many locations it cleaned."""
    from crm_sync.locations import for_discovered, syncs
    from crm_sync.paths import data_home
    from crm_sync.pipeline.context import RunContext
    from crm_sync.pipeline.retention import cleanup

    done = 0
    for row in book_of(conn, profile.name):
        if syncs(profile, row):
            continue
        one = for_discovered(profile, row)
        stats = cleanup(conn, RunContext(one, "discover", "discover"), data_home() / "reports" / one.dag_id)
        log.info("agency profile %s: retention for location %s (%s, %s): %s", profile.name, row.location_id,
                 row.key, row.status, stats)
        done += 1
    return done


def confirmed(listed: list[Any], installed_before: Iterable[str],
              confirm: Callable[[str], Any]) -> list[Any]:
    """``listed`` with every location that was installed and that the listing missed asked of GHL by its id
    (``confirm``, one call each): one GHL still has as installed is kept, as GHL answered it."""
    seen = {item.id for item in listed if item.installed}
    for location_id in sorted(set(installed_before) - seen):
        found = confirm(location_id)
        if found is not None and found.installed:
            log.warning("location %s was missing from GHL's list of installed locations, but asked by its id GHL "
                        "has the app installed there: it stays installed", location_id)
            listed = [item for item in listed if item.id != location_id] + [found]
    return listed


def connection_exists(conn_id: str) -> bool:
    """Whether the Airflow connection ``conn_id`` exists now (a location without it waits for it)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException, AirflowRuntimeError

    try:
        BaseHook.get_connection(conn_id)
    except (AirflowNotFoundException, AirflowRuntimeError):
        return False
    return True


def new_key(location_id: str, taken: dict[str, str]) -> str:
    """A new location's key: its id in lower case, any run of other characters one "_", none at either
    end (``Location.key``'s pattern ``^[a-z0-9][a-z0-9_]*$``, and never "__": the profile name's
    separator); an id with nothing left is ``loc``. When another location of the profile already has
    that key (ids differing only in case), "_" and 6 hex of the id's SHA-1 follow."""
    key = re.sub(r"[^a-z0-9]+", "_", location_id.lower()).strip("_") or "loc"
    if taken.get(key, location_id) != location_id:
        key = f"{key}_{hashlib.sha1(location_id.encode()).hexdigest()[:6]}"
    return key


def refresh_book(conn: sa.Connection, profile: Profile, listed: Iterable[Any],
                 has_connection: Callable[[str], bool], now: datetime | None = None) -> dict[str, int]:
    """Bring ``profile``'s rows of ``agency_location`` to what GHL ``listed`` (``hooks.agency.InstalledLocation``:
    id, name, address, installed, installed_at)."""
    now = now or datetime.now(UTC)
    agency = profile.agency
    rows = {row.location_id: row for row in conn.execute(
        sa.select(agency_location).where(agency_location.c.profile == profile.name))}
    taken = {row.key: row.location_id for row in rows.values()}
    installed = {item.id: item for item in listed if item.installed}
    ready_cache: dict[str, bool] = {}
    counts = {"discovered": len(installed), "new": 0, "newly_uninstalled": 0, "reinstalled": 0}
    for location_id in sorted(installed):
        item, old = installed[location_id], rows.get(location_id)
        key = old.key if old is not None else new_key(location_id, taken)
        taken[key] = location_id
        app_conn_id = agency.app_conn_for(location_id, key)
        if app_conn_id not in ready_cache:
            ready_cache[app_conn_id] = has_connection(app_conn_id)
        values = {"key": key, "name": item.name, "address": item.address or None,
                  "installed": True, "installed_at": _when(item.installed_at), "last_seen_at": now,
                  "uninstalled_at": None, "app_conn_id": app_conn_id, "app_conn_ready": ready_cache[app_conn_id],
                  "checked_at": now}
        if old is None:
            conn.execute(sa.insert(agency_location).values(profile=profile.name, location_id=location_id,
                                                           first_seen_at=now, **values))
            counts["new"] += 1
        else:
            conn.execute(_update(profile.name, location_id).values(**values))
            counts["reinstalled"] += not old.installed
        _log_change(profile.name, location_id, values, old)
    for location_id, old in rows.items():
        if location_id in installed:
            continue
        gone = {"installed": False, "checked_at": now,
                "uninstalled_at": old.uninstalled_at or now}
        conn.execute(_update(profile.name, location_id).values(**gone))
        if old.installed:
            counts["newly_uninstalled"] += 1
            log.info("agency profile %s: location %s (%s) uninstalled the app: %s__%s no longer syncs",
                     profile.name, location_id, old.name, profile.name, old.key)
    book = book_of(conn, profile.name)
    counts.update(installed=sum(r.installed for r in book), syncing=sum(r.status == "syncing" for r in book),
                  waiting=sum(r.status == "waiting" for r in book),
                  uninstalled=sum(r.status == "uninstalled" for r in book))
    log.info("agency profile %s: %s", profile.name, ", ".join(f"{n} {what}" for what, n in counts.items()))
    return counts


def _update(profile: str, location_id: str) -> sa.Update:
    return sa.update(agency_location).where(agency_location.c.profile == profile,
                                            agency_location.c.location_id == location_id)


def _when(value: Any) -> datetime | None:
    """GHL's ``installedAt`` (ISO 8601), aware; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _log_change(profile: str, location_id: str, values: dict[str, Any], old: Any) -> None:
    where = f"agency profile {profile}: location {location_id} ({values['name']})"
    state = "syncing" if values["app_conn_ready"] else f"waiting for its app connection {values['app_conn_id']}"
    if old is None:
        log.info("%s is new: key %s, %s", where, values["key"], state)
    elif not old.installed:
        log.info("%s installed the app again: %s", where, state)
    elif bool(old.app_conn_ready) != values["app_conn_ready"] or old.app_conn_id != values["app_conn_id"]:
        log.info("%s is now %s", where, state)
    elif old.name != values["name"]:
        log.info("%s was named %r", where, old.name)

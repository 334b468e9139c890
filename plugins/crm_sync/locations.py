"""Many GHL locations from one profile file: one profile (so one DAG) per location.

An agency syncs the same app mapping into dozens of locations. A profile with ``locations``
becomes one profile per location, named ``<profile>__<key>`` (the warehouse's key, so every
location's rows, links, watermarks and outbox stay apart), with the DAG id
``<dag_id>_<key>``, the location's GHL connection, and its pool (``crm_sync_<conn_id>``
unless given: one rate budget per location). Schedules not given are staggered: location i
of n starts its minute i * 60 // n later (wrapping within the hour), so they do not all
start at once.

A profile with ``agency`` becomes one profile per discovered location that is syncing (its app
connection exists, the app still installed), read from the book (``profile_agency.read_book``): the
agency's connection with the location's id (so the location's webhooks wake its fast lane and its
token is the location's own), the agency's pool (one budget for the agency's calls), the location's
app connection, and a start minute fixed by its key, so discovering another location moves no one.

This module works on any ``Profile`` it is given and imports no profile model, so ``profile`` can use it.
"""

from __future__ import annotations

import hashlib

from crm_sync.profile_agency import DiscoveredLocation, read_book, read_location
from crm_sync.profile_base import ProfileError

SEPARATOR = "__"


def staggered(schedule: str, index: int, count: int) -> str:
    """The cron ``schedule`` with its minute moved by location ``index`` of ``count``'s share of an hour.

    A plain minute (``0 2 * * *``) moves within its hour; a step (``*/15 * * * *``) gets an
    offset inside its step (``7-59/15``); any other minute field is left as it is.
    """
    fields = schedule.split()
    if len(fields) != 5 or index == 0:
        return schedule
    minute = fields[0]
    if minute.isdigit():
        fields[0] = str((int(minute) + index * 60 // count) % 60)
    elif minute.startswith("*/") and minute[2:].isdigit():
        step = int(minute[2:])
        fields[0] = f"{index * step // count}-59/{step}"
    return " ".join(fields)


def minute_of(key: str) -> int:
    """A discovered location's own minute of the hour (0-59), from its key: stable whoever else is found."""
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % 60


def per_location(profile) -> list:
    """The profile itself, or one profile per location it lists or (agency) has discovered syncing."""
    if profile.agency is not None:
        return [for_discovered(profile, row) for row in read_book(profile.name) if syncs(profile, row)]
    if not profile.locations:
        return [profile]
    keys = [location.key for location in profile.locations]
    if duplicates := sorted({key for key in keys if keys.count(key) > 1}):
        raise ProfileError(f"profile {profile.name}: key 'locations': duplicate location key(s) {duplicates}")
    count = len(profile.locations)
    return [_for_location(profile, location, index, count) for index, location in enumerate(profile.locations)]


def one_location(profile, key: str):
    """The location ``key`` of a multi-location or agency profile; an agency's location that does not
    sync (waiting for its app connection, uninstalled, not in ``agency.only``) is an error saying why."""
    if profile.agency is None:
        for one in per_location(profile):
            if one.name == f"{profile.name}{SEPARATOR}{key}":
                return one
        raise ProfileError(f"profile {profile.name} has no location {key!r}")
    row = read_location(profile.name, key)  # at task time: its one row, not the book
    if row is None:
        raise ProfileError(f"profile {profile.name} has no location {key!r}: no discovery has found it")
    if row.status == "uninstalled":
        when = row.uninstalled_at.date().isoformat() if row.uninstalled_at else "an unknown date"
        raise ProfileError(f"location {row.location_id} ({row.name}) uninstalled the app on {when}: "
                           "it no longer syncs")
    if row.status == "waiting":
        raise ProfileError(f"location {row.location_id} ({row.name}) is waiting for its app connection "
                           f"{row.app_conn_id}: it syncs once that connection exists and discovery runs")
    if not syncs(profile, row):
        raise ProfileError(f"location {row.location_id} ({row.name}) is not in agency.only of profile "
                           f"{profile.name}: it does not sync")
    return for_discovered(profile, row)


def syncs(profile, row: DiscoveredLocation) -> bool:
    """A discovered location gets a DAG: installed, its app connection there, and in ``agency.only`` if set."""
    only = profile.agency.only
    return row.status == "syncing" and (not only or row.location_id in only)


def for_discovered(profile, row: DiscoveredLocation):
    """The profile of one discovered location of an agency profile."""
    agency = profile.agency
    return profile.model_copy(update={
        "name": f"{profile.name}{SEPARATOR}{row.key}",
        "dag_id": f"{profile.dag_id}_{row.key}",
        "schedule": staggered(profile.schedule, minute_of(row.key), 60),
        "ghl": profile.ghl.model_copy(update={"conn_id": agency.conn_id, "location_id": row.location_id,
                                              "pool": agency.pool_name}),
        "app": profile.app.model_copy(update={"conn_id": row.app_conn_id or agency.app_conn_for(row.location_id,
                                                                                                  row.key)}),
        "agency": None,
        "locations": [],
    })


def _for_location(profile, location, index: int, count: int):
    app = profile.app.model_copy(update={"conn_id": location.app_conn_id}) if location.app_conn_id else profile.app
    return profile.model_copy(update={
        "name": f"{profile.name}{SEPARATOR}{location.key}",
        "dag_id": f"{profile.dag_id}_{location.key}",
        "schedule": location.schedule or staggered(profile.schedule, index, count),
        "ghl": profile.ghl.model_copy(update={"conn_id": location.conn_id, "pool": location.pool}),
        "app": app,
        "locations": [],
    })

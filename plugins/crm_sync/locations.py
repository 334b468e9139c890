"""Many GHL locations from one profile file: one profile (so one DAG) per location.

An agency syncs the same app mapping into dozens of locations. A profile with ``locations``
becomes one profile per location, named ``<profile>__<key>`` (the warehouse's key, so every
location's rows, links, watermarks and outbox stay apart), with the DAG id
``<dag_id>_<key>``, the location's GHL connection, and its pool (``crm_sync_<conn_id>``
unless given: one rate budget per location). Schedules not given are staggered: location i
of n starts its minute i * 60 // n later (wrapping within the hour), so they do not all
start at once.
"""

from __future__ import annotations

from pathlib import Path

from crm_sync.profile import Location, Profile, ProfileError, load_profile

SEPARATOR = "__"


def per_location(profile: Profile) -> list[Profile]:
    """The profile itself, or one profile per location it lists."""
    if not profile.locations:
        return [profile]
    keys = [location.key for location in profile.locations]
    if duplicates := sorted({key for key in keys if keys.count(key) > 1}):
        raise ProfileError(f"profile {profile.name}: key 'locations': duplicate location key(s) {duplicates}")
    count = len(profile.locations)
    return [_for_location(profile, location, index, count) for index, location in enumerate(profile.locations)]


def _for_location(profile: Profile, location: Location, index: int, count: int) -> Profile:
    app = profile.app.model_copy(update={"conn_id": location.app_conn_id}) if location.app_conn_id else profile.app
    return profile.model_copy(update={
        "name": f"{profile.name}{SEPARATOR}{location.key}",
        "dag_id": f"{profile.dag_id}_{location.key}",
        "schedule": location.schedule or staggered(profile.schedule, index, count),
        "ghl": profile.ghl.model_copy(update={"conn_id": location.conn_id, "pool": location.pool}),
        "app": app,
        "locations": [],
    })


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


def location_profile(name: str, directory: Path) -> Profile:
    """The profile of one location, by its ``<profile>__<key>`` name."""
    base, _, key = name.rpartition(SEPARATOR)
    for profile in per_location(load_profile(directory / f"{base}.yaml")):
        if profile.name == name:
            return profile
    raise ProfileError(f"profile {base} has no location {key!r}")

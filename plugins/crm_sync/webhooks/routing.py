"""Which profiles a location's webhooks concern: the profiles whose YAML names that ``ghl.location_id``,
and how long the inbox keeps that location's events (their longest ``retention_days``); and which
profile an app's own webhook (``/webhooks/app/<profile>``) is for.

Read from the profile files (re-read when one changes; an agency profile's locations from its book,
re-read when its snapshot changes and, with any agency profile, at least once a minute), never from
Airflow connections, so a request costs no metadata-database lookup and no secret is touched.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

from crm_sync.paths import PROFILES_DIR

DEFAULT_RETENTION_DAYS = 90  # the inbox's retention when no profile says one


@dataclass(frozen=True)
class Route:
    profiles: tuple[str, ...]
    retention_days: int | None  # the longest of its profiles; None: one of them keeps everything


def _signature(directory: Path) -> tuple:
    files = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in directory.glob("*.y*ml")))
    return files + _books(directory, files)


def _books(directory: Path, files: tuple) -> tuple:
    """An agency's locations change with its book, not its YAML: the books' snapshots (rewritten when a
    parse finds the book changed) and, whenever an agency profile exists, the minute, so a new location
    routes within one even where no snapshot can be written (another CRM_SYNC_HOME, a read-only one)."""
    from crm_sync.profile_agency import snapshot_folder

    folder = snapshot_folder()
    books = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob("*.json"))) if folder.is_dir() else ()
    return books + (int(time.time() // 60),) if books or _any_agency(directory, files) else ()


@functools.lru_cache(maxsize=4)
def _any_agency(directory: Path, _files: tuple) -> bool:
    """Whether a valid agency profile is in ``directory`` (re-read when a profile file changes)."""
    from crm_sync.profile import agency_profiles

    return bool(agency_profiles(directory))


@functools.lru_cache(maxsize=4)
def _profiles(directory: Path, _signature: tuple) -> tuple:
    from crm_sync.profile import usable_profiles

    return tuple(usable_profiles(directory)[0])


@functools.lru_cache(maxsize=4)
def _routes(directory: Path, _signature: tuple) -> tuple[dict[str, Route], int]:
    profiles = _profiles(directory, _signature)
    routes: dict[str, Route] = {}
    for profile in profiles:
        if location := profile.ghl.location_id:
            known = routes.get(location)
            days = [profile.retention_days, *([known.retention_days] if known else [])]
            routes[location] = Route((*(known.profiles if known else ()), profile.name),
                                     None if None in days else max(days))
    longest = max((p.retention_days for p in profiles if p.retention_days), default=DEFAULT_RETENTION_DAYS)
    return routes, longest


def profiles_for(location_id: str, directory: Path = PROFILES_DIR) -> tuple[str, ...]:
    route = _routes(directory, _signature(directory))[0].get(location_id)
    return route.profiles if route else ()


def retention(directory: Path = PROFILES_DIR) -> tuple[dict[str, int | None], int]:
    """Days each named location's events are kept (None: kept), and the days for any other location's:
    the longest ``retention_days`` of all profiles (90 without one)."""
    routes, longest = _routes(directory, _signature(directory))
    return {location: route.retention_days for location, route in routes.items()}, longest


def app_profile(name: str, directory: Path = PROFILES_DIR):
    """The valid profile of that name whose app pushes (``app.webhooks`` set), else None."""
    found = next((p for p in _profiles(directory, _signature(directory)) if p.name == name), None)
    return found if found is not None and found.app.webhooks is not None else None

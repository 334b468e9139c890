"""Which profiles a location's webhooks concern: the profiles whose YAML names that ``ghl.location_id``.

Read from the profile files (re-read when one changes), never from Airflow connections, so a
request costs no metadata-database lookup and no secret is touched.
"""

from __future__ import annotations

import functools
from pathlib import Path

from crm_sync.paths import PROFILES_DIR


def _signature(directory: Path) -> tuple:
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in directory.glob("*.y*ml")))


@functools.lru_cache(maxsize=4)
def _routes(directory: Path, _signature: tuple) -> dict[str, tuple[str, ...]]:
    from crm_sync.profile import usable_profiles

    routes: dict[str, list[str]] = {}
    for profile in usable_profiles(directory)[0]:
        if profile.ghl.location_id:
            routes.setdefault(profile.ghl.location_id, []).append(profile.name)
    return {location: tuple(names) for location, names in routes.items()}


def profiles_for(location_id: str, directory: Path = PROFILES_DIR) -> tuple[str, ...]:
    return _routes(directory, _signature(directory)).get(location_id, ())

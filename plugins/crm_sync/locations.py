"""Many GHL locations from one profile file: one profile (so one DAG) per location.

An agency syncs the same app mapping into dozens of locations. A profile with ``locations``
becomes one profile per location, named ``<profile>__<key>`` (the warehouse's key, so every
location's rows, links, watermarks and outbox stay apart), with the DAG id
``<dag_id>_<key>``, the location's GHL connection, and its pool (``crm_sync_<conn_id>``
unless given: one rate budget per location). Schedules not given are staggered: location i
of n starts its minute i * 60 // n later (wrapping within the hour), so they do not all
start at once. ``profile.per_location`` does the expanding; this module holds its naming and
scheduling rules, and imports nothing, so profile loading can use them.
"""

from __future__ import annotations

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


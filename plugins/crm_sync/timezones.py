"""Local time: the profile's zone applied to every app value that carries none.

GHL keeps instants (UTC with an offset); many shop apps keep wall-clock dates and times with no
zone. One rule set, used by reads, writes, "changed since" filters and reports:

- a wall-clock time is read in the profile's zone; one that does not exist (the spring-forward
  hour) moves forward by the gap, one that exists twice (the fall-back hour) is its first
  occurrence (``fold=0``);
- an instant is written as the wall clock of the profile's zone at that instant;
- a date-only value is the local day of the instant; a local day written to GHL becomes
  ``DAY_TIME`` (noon) of that day in the profile's zone, which keeps the same date for anyone
  within eleven hours of the shop;
- an appointment keeps its duration: its local end is its local start plus its duration, so a
  start moved forward out of a nonexistent hour moves its end with it.

Timestamps as the sides write them (ISO 8601, Unix seconds or milliseconds, strftime patterns)
are read (``timestamp``) and written (``format_moment``) here too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_sync.records import RuleBroken

DAY_TIME = time(12, 0)


def utcnow() -> datetime:
    """Now, as an aware UTC datetime: every timestamp the warehouse stores."""
    return datetime.now(UTC)


def zone(name: str) -> ZoneInfo:
    """The IANA zone of this name, or ValueError saying what is expected."""
    try:
        if not name or name != name.strip():
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"{name!r} is not an IANA time zone name (such as America/New_York, "
                         "Europe/London or UTC)") from None


def to_instant(wall: datetime, where: tzinfo) -> datetime:
    """A wall-clock time in ``where`` (ignored when ``wall`` has its own offset) as a UTC instant.
    PEP 495: ``fold=0`` takes the first of a repeated time, and a skipped time keeps the offset
    in force before the gap, which lands it the gap's length later: moved forward."""
    if wall.tzinfo is not None:
        return wall.astimezone(UTC)
    return wall.replace(tzinfo=where, fold=0).astimezone(UTC)


def to_wall(moment: datetime, where: tzinfo) -> datetime:
    """An instant as the naive wall-clock time in ``where``."""
    return moment.astimezone(where).replace(tzinfo=None, fold=0)


def local_day(moment: datetime, where: tzinfo) -> date:
    """The date a shop in ``where`` sees at this instant."""
    return moment.astimezone(where).date()


def day_instant(day: date, where: tzinfo) -> datetime:
    """A date-only value as the instant GHL gets: ``DAY_TIME`` of that day in ``where``."""
    return to_instant(datetime.combine(day, DAY_TIME), where)


def day_start(moment: datetime, where: tzinfo) -> datetime:
    """The instant the local day of ``moment`` began: a day-granular "changed since" asks from here,
    so a record changed late in the local evening before a window's UTC date is still listed."""
    return to_instant(datetime.combine(local_day(moment, where), time()), where)


def span_end(start: datetime, wall_start: datetime, wall_end: datetime) -> datetime:
    """An appointment's end instant: its start plus the duration its wall-clock times show."""
    return start + (wall_end - wall_start)


def wall_end(start: datetime, end: datetime, where: tzinfo) -> datetime:
    """An appointment's local end: its local start plus its duration."""
    return to_wall(start, where) + (end - start)


def timestamp(value: Any, pattern: str = "iso", zone: tzinfo = UTC) -> datetime | None:
    """A moment in UTC from ISO 8601, Unix seconds or milliseconds, or an strftime pattern; a value
    without an offset is a wall-clock time in ``zone`` (``to_instant`` has the DST rule). Raises
    RuleBroken (``timestamp_format``) for a value that is none of these."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise RuleBroken.of("timestamp_format", f"timestamp {value!r} is a boolean")
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
        moment = parse_moment(value, pattern)
    except (ValueError, OverflowError, OSError):
        expected = "an ISO 8601 timestamp" if pattern in ("iso", "unix", "unix_ms") else f"in the form {pattern}"
        raise RuleBroken.of("timestamp_format", f"timestamp {value!r} is not {expected}") from None
    try:
        return to_instant(moment, zone)
    except OverflowError:
        raise RuleBroken.of("timestamp_format", f"timestamp {value!r} is out of range in {zone}") from None


def parse_moment(value: Any, pattern: str) -> datetime:
    """The datetime a text holds: naive (a wall-clock time) when it carries no offset."""
    if pattern not in ("iso", "unix", "unix_ms"):
        return datetime.strptime(str(value), pattern)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def moment_or_none(value: Any, zone: tzinfo = UTC) -> datetime | None:
    """A timestamp for bookkeeping (windows, echo checks): unreadable is None, stage quarantines it."""
    try:
        return timestamp(value, zone=zone)
    except RuleBroken:
        return None


def format_moment(moment: datetime, pattern: str, zone: tzinfo = UTC) -> str | int:
    """A moment as an app wants it in a query or a body: ISO 8601 and Unix times in UTC (they
    carry their offset), a strftime pattern as the wall clock of ``zone``."""
    if pattern == "unix":
        return int(moment.timestamp())
    if pattern == "unix_ms":
        return int(moment.timestamp() * 1000)
    if pattern == "iso":
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return to_wall(moment, zone).strftime(pattern)


def show(moment: datetime | str | None, where: tzinfo, empty: str = "") -> str:
    """An instant for a report or a page: local time to the minute, with the zone named
    (``2026-12-01 09:00 EST America/New_York``); ``empty`` for none. Text that is not a moment is
    shown as it is. Every page, report and export renders its times here."""
    if moment in (None, ""):
        return empty
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(where)
    key = getattr(where, "key", None) or str(where)
    name = local.tzname()
    return local.strftime("%Y-%m-%d %H:%M ") + (key if name in (None, key) else f"{name} {key}")

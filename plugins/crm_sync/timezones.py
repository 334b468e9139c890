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
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_TIME = time(12, 0)


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

"""One way to show a moment to a person: every page, report and export renders timestamps here."""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(moment: datetime | str | None, empty: str = "") -> str:
    """``2026-11-27 14:05 UTC``; an ISO string is parsed first, a naive datetime is taken as UTC."""
    if moment is None or moment == "":
        return empty
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

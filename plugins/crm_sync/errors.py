"""Failures that a retry cannot fix: Airflow fails the task at once instead of retrying it."""

from __future__ import annotations

try:
    from airflow.sdk.exceptions import AirflowFailException as _FailNow
except ImportError:  # used outside Airflow
    _FailNow = RuntimeError


class NoRetryError(_FailNow):
    """Raise for a verdict, not an accident: bad data over the threshold, a run already failed."""


class SideUnavailable(NoRetryError):
    """A whole side refuses every write, not one row (the GHL location uninstalled the app, the agency
    connection does not match GHL): the load stops that side's lane and leaves its rows pending. Any
    other NoRetryError raised while sending a row (e.g. paging that would not end) is the row's: it
    takes the per-row path to a dead letter."""

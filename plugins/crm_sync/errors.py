"""Failures that a retry cannot fix: Airflow fails the task at once instead of retrying it."""

from __future__ import annotations

try:
    from airflow.sdk.exceptions import AirflowFailException as _FailNow
except ImportError:  # used outside Airflow
    _FailNow = RuntimeError


class NoRetryError(_FailNow):
    """Raise for a verdict, not an accident: bad data over the threshold, a run already failed."""

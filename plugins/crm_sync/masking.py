"""Secrets obtained at run time (OAuth access and refresh tokens) join Airflow's secret masker,
so a log line, an exception or a rendered field that happens to carry one shows ``***``.
Connection passwords and Variables are masked by Airflow itself; these tokens it never saw."""

from __future__ import annotations


def mask_tokens(body: dict) -> None:
    """Register the tokens of an OAuth token answer with the masker (a no-op outside Airflow)."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:
        return
    for key in ("access_token", "refresh_token", "id_token"):
        if isinstance(body.get(key), str) and body[key]:
            mask_secret(body[key])

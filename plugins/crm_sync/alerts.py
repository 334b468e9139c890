"""Alerts: one notification for each event an operator has to act on.

A failed run, a data-quality threshold breach, rows that failed for good, and a rotated
refresh token that could not be saved. Each alert goes to the webhook of the connection
``crm_sync_alerts__<profile>`` if it exists, else to the global ``crm_sync_alerts`` (its host is
a Slack-compatible incoming webhook URL, which gets ``{"text": ...}``), and/or to the Airflow
notifier that connection names (extra ``notifier``: a dotted class path, ``notifier_kwargs``).

What an alert carries is built here from names and counts only: profile, DAG, run, counts
and a link to the run's report page; never a token, a secret or a record's personal data.
Sending never fails the caller: an alert that cannot be delivered is logged. The failed-run
alert, which reads the run's counts from its report, is sent by ``pipeline.run_failed``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from crm_sync.console_urls import run_report_url

log = logging.getLogger(__name__)
GLOBAL_CONN_ID = "crm_sync_alerts"
SEND_ATTEMPTS = 3
TITLES = {
    "run_failed": "run failed",
    "quality_breach": "data-quality threshold breached: nothing was written",
    "rows_failed": "rows failed for good (see the outbox: crm-sync outbox retry/discard)",
    "refresh_token_not_saved": "a rotated OAuth refresh token could not be saved: the install is at risk",
}


@dataclass(frozen=True)
class Alert:
    kind: str
    profile: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    subject: str | None = None  # a connection id, when the alert is about one

    @property
    def link(self) -> str | None:
        return report_url(self.dag_id, self.run_id) if self.dag_id and self.run_id else None

    def text(self) -> str:
        parts = [f"crm-sync {TITLES[self.kind]}", f"profile={self.profile or '-'}"]
        if self.subject:
            parts.append(f"connection={self.subject}")
        if self.run_id:
            parts.append(f"run={self.run_id}")
        parts += [f"{name}={value}" for name, value in sorted(self.counts.items())]
        if self.link:
            parts.append(self.link)
        return " | ".join(parts)

    def payload(self) -> dict[str, Any]:
        """Slack's ``text`` for people, and the same facts as fields for machines."""
        return {"text": self.text(), "kind": self.kind, "profile": self.profile, "dag_id": self.dag_id,
                "run_id": self.run_id, "counts": self.counts, "connection": self.subject, "link": self.link}


def report_url(dag_id: str, run_id: str) -> str:
    """The run's report page in the console, under Airflow's ``[api] base_url``."""
    base = _config("api", "base_url") or "http://localhost:8080"
    return run_report_url(dag_id, run_id, base)


def _config(section: str, key: str) -> str | None:
    from airflow.sdk.configuration import conf

    return conf.get(section, key, fallback=None) or None


def _connection(profile: str | None):
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException, AirflowRuntimeError

    for conn_id in ([f"{GLOBAL_CONN_ID}__{profile}"] if profile else []) + [GLOBAL_CONN_ID]:
        try:
            return BaseHook.get_connection(conn_id)
        except (AirflowNotFoundException, AirflowRuntimeError):
            continue
    return None


def send(alert: Alert, context: dict[str, Any] | None = None) -> bool:
    """Deliver one alert; True when every configured target took it. Never raises."""
    try:
        conn = _connection(alert.profile)
    except Exception as exc:  # noqa: BLE001 - an alert must not break what it reports on
        log.error("alert %s not sent: its connection could not be read (%s)", alert.kind, type(exc).__name__)
        return False
    if conn is None:
        log.warning("alert %s not sent: no connection %s__%s or %s", alert.kind, GLOBAL_CONN_ID, alert.profile,
                    GLOBAL_CONN_ID)
        return False
    extra = conn.extra_dejson
    delivered = True
    if conn.host:
        delivered = _post(conn.host, alert) and delivered
    if extra.get("notifier"):
        delivered = _notify(extra["notifier"], extra.get("notifier_kwargs") or {}, alert, context) and delivered
    return delivered


def _post(url: str, alert: Alert) -> bool:
    import httpx

    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            httpx.post(url, json=alert.payload(), timeout=10).raise_for_status()
            log.info("alert %s sent", alert.kind)
            return True
        except httpx.HTTPError as exc:  # the type only: the URL itself is a secret
            log.warning("alert %s: webhook attempt %d of %d failed (%s)", alert.kind, attempt, SEND_ATTEMPTS,
                        type(exc).__name__)
    return False


def _notify(path: str, kwargs: dict[str, Any], alert: Alert, context: dict[str, Any] | None) -> bool:
    from airflow.sdk.module_loading import import_string

    try:
        notifier = import_string(path)(text=alert.text(), **kwargs)
        notifier({**(context or {}), "crm_sync_alert": alert.payload()})
        return True
    except Exception as exc:  # noqa: BLE001 - a third-party notifier's failure is logged, not raised
        log.error("alert %s: notifier %s failed (%s)", alert.kind, path, type(exc).__name__)
        return False


def _task_context() -> dict[str, Any]:
    """The running task's context, or {} outside a task (the UI's connection test, a CLI)."""
    try:
        from airflow.sdk import get_current_context

        return dict(get_current_context())
    except Exception:  # noqa: BLE001 - no task is running
        return {}


def refresh_token_not_saved(conn_id: str) -> bool:
    context = _task_context()
    run, dag = context.get("dag_run"), context.get("dag")
    profile = next((tag for tag in getattr(dag, "tags", ()) if tag != "crm-sync"), None)  # the factory's tags
    return send(Alert("refresh_token_not_saved", profile=profile, dag_id=getattr(dag, "dag_id", None),
                      run_id=getattr(run, "run_id", None), subject=conn_id), context)

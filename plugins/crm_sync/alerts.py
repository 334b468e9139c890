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

A connection is trusted no further than it must be: the webhook must be ``https://`` (plain http
only to this machine's loopback, as in tests), since the URL's path is its secret; the notifier
must be a ``BaseNotifier`` subclass, so a connection cannot name ``os.system`` or any other callable.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

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


class AlertConfigError(ValueError):
    """A connection's alert target breaks a rule; the message names the connection, never the URL's path."""


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
        try:
            delivered = _post(webhook_url(conn.conn_id, conn.host), alert) and delivered
        except AlertConfigError as exc:
            log.error("alert %s not sent to the webhook: %s", alert.kind, exc)
            delivered = False
    if extra.get("notifier"):
        try:
            notifier, kwargs = notifier_class(conn.conn_id, extra["notifier"]), extra.get("notifier_kwargs") or {}
            if not isinstance(kwargs, dict):
                raise AlertConfigError(f"connection {conn.conn_id}: extra notifier_kwargs must be an object")
            delivered = _notify(notifier, kwargs, alert, context) and delivered
        except AlertConfigError as exc:
            log.error("alert %s not sent to the notifier: %s", alert.kind, exc)
            delivered = False
    return delivered


def webhook_url(conn_id: str, url: str) -> str:
    """The connection's webhook URL if it is https, or plain http to loopback; else AlertConfigError,
    which names the connection and the URL's scheme and host, never its path (the secret part)."""
    rule = "the webhook must be an https:// URL (plain http only to loopback: 127.0.0.0/8, ::1, localhost)"
    try:
        parts = urlsplit(url.strip())
        scheme, host = parts.scheme, parts.hostname or ""
    except ValueError:
        scheme, host = "", ""
    if (scheme == "https" and host) or (scheme == "http" and _is_loopback(host)):
        return url.strip()
    shown = f"it is {scheme}://{host}/..." if scheme in ("http", "https") and host else "it is not an http(s) URL"
    raise AlertConfigError(f"connection {conn_id}: {rule}; {shown}")


def _is_loopback(host: str) -> bool:
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def notifier_class(conn_id: str, path: Any) -> type:
    """The notifier class the connection's extra names, if it subclasses Airflow's ``BaseNotifier``;
    else AlertConfigError, and what it names is never called."""
    from airflow.sdk import BaseNotifier
    from airflow.sdk.module_loading import import_string

    rule = "extra notifier must be the dotted path of a subclass of airflow.sdk.BaseNotifier"
    if not isinstance(path, str):
        raise AlertConfigError(f"connection {conn_id}: {rule}; it is not a string")
    try:
        target = import_string(path)
    except Exception as exc:  # noqa: BLE001 - ImportError, or whatever the named module raises on import
        raise AlertConfigError(f"connection {conn_id}: {rule}; {path} cannot be imported "
                               f"({type(exc).__name__})") from None
    if not (isinstance(target, type) and issubclass(target, BaseNotifier)):
        raise AlertConfigError(f"connection {conn_id}: {rule}; {path} is not one, so it is not called")
    return target


def _post(url: str, alert: Alert) -> bool:
    import httpx

    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:  # httpx follows no redirect: an https webhook cannot be sent on to plain http
            httpx.post(url, json=alert.payload(), timeout=10).raise_for_status()
            log.info("alert %s sent", alert.kind)
            return True
        except httpx.HTTPError as exc:  # the type only: the URL itself is a secret
            log.warning("alert %s: webhook attempt %d of %d failed (%s)", alert.kind, attempt, SEND_ATTEMPTS,
                        type(exc).__name__)
    return False


def _notify(notifier: type, kwargs: dict[str, Any], alert: Alert, context: dict[str, Any] | None) -> bool:
    try:
        notifier(text=alert.text(), **kwargs)({**(context or {}), "crm_sync_alert": alert.payload()})
        return True
    except Exception as exc:  # noqa: BLE001 - a third-party notifier's failure is logged, not raised
        log.error("alert %s: notifier %s failed (%s)", alert.kind, notifier.__qualname__, type(exc).__name__)
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

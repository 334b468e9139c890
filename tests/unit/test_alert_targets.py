"""What an alert connection may name: an https webhook (plain http to loopback only), and a notifier
that is an Airflow ``BaseNotifier`` subclass; anything else is refused, named, and never called."""

from __future__ import annotations

import os

import pytest
from airflow.sdk import BaseNotifier
from crm_sync.alerts import AlertConfigError, notifier_class, webhook_url
from crm_sync.pipeline.run_failed import RunFailedNotifier

CALLED: list[str] = []


def a_function(*args, **kwargs):
    CALLED.append("a_function")


class NotANotifier:
    """Takes what a notifier takes and can be called like one, but is not Airflow's."""

    def __init__(self, *args, **kwargs):
        CALLED.append("NotANotifier")

    def __call__(self, context):
        CALLED.append("NotANotifier()")


class ANotifier(BaseNotifier):
    def notify(self, context) -> None:
        CALLED.append("ANotifier")


AN_INSTANCE = ANotifier()


@pytest.mark.parametrize("url", [
    "https://hooks.slack.com/services/T000/B000/secret", "  https://hooks.example.com/x  ",
    "http://127.0.0.1:9/hook", "http://127.8.9.10/hook", "http://[::1]:8080/hook", "http://localhost/hook",
    "http://LocalHost:81/hook", "http://[::ffff:127.0.0.1]/hook"])
def test_https_and_plain_http_to_loopback_are_allowed(url):
    assert webhook_url("crm_sync_alerts", url) == url.strip()


@pytest.mark.parametrize(("url", "shown"), [
    ("http://hooks.slack.com/services/T0K3N", "it is http://hooks.slack.com/..."),
    ("http://10.0.0.5/hook?token=T0K3N", "it is http://10.0.0.5/..."),
    ("http://128.0.0.1/T0K3N", "it is http://128.0.0.1/..."),
    ("http://0.0.0.0/T0K3N", "it is http://0.0.0.0/..."),
    ("http://localhost.attacker.example/T0K3N", "it is http://localhost.attacker.example/..."),
    ("http://user:T0K3N@hooks.example.com/x", "it is http://hooks.example.com/..."),
    ("hooks.slack.com/services/T0K3N", "it is not an http(s) URL"),
    ("ftp://hooks.example.com/T0K3N", "it is not an http(s) URL"),
    ("https:///T0K3N", "it is not an http(s) URL"),
    ("http://[::1/T0K3N", "it is not an http(s) URL")])
def test_any_other_webhook_is_refused_naming_the_connection_and_the_rule_but_not_the_secret(url, shown):
    with pytest.raises(AlertConfigError) as refused:
        webhook_url("crm_sync_alerts__gymdesk", url)
    message = str(refused.value)
    assert message.startswith("connection crm_sync_alerts__gymdesk: the webhook must be an https:// URL")
    assert "loopback" in message and message.endswith(shown)
    assert "T0K3N" not in message


@pytest.mark.parametrize("cls", [ANotifier, RunFailedNotifier])
def test_a_base_notifier_subclass_is_resolved(cls):
    assert notifier_class("crm_sync_alerts", f"{cls.__module__}.{cls.__qualname__}") is cls


@pytest.mark.parametrize(("path", "why"), [
    ("os.system", "is not one, so it is not called"),
    (f"{__name__}.a_function", "is not one, so it is not called"),
    (f"{__name__}.NotANotifier", "is not one, so it is not called"),
    (f"{__name__}.AN_INSTANCE", "is not one, so it is not called"),  # an instance, not the class
    ("airflow.sdk.BaseNotifier.notify", "cannot be imported (ModuleNotFoundError)"),
    ("crm_sync.no_such_module.Notifier", "cannot be imported (ModuleNotFoundError)"),
    ("notadottedpath", "cannot be imported (ImportError)")])
def test_anything_else_is_refused_with_the_connection_and_the_rule_and_never_called(monkeypatch, path, why):
    CALLED.clear()
    called_system = []
    monkeypatch.setattr(os, "system", lambda *args, **kwargs: called_system.append(args) or 0)
    with pytest.raises(AlertConfigError) as refused:
        notifier_class("crm_sync_alerts", path)
    assert str(refused.value) == ("connection crm_sync_alerts: extra notifier must be the dotted path of a "
                                  f"subclass of airflow.sdk.BaseNotifier; {path} {why}")
    assert CALLED == [] and called_system == []


def test_a_notifier_that_is_not_a_string_is_refused():
    with pytest.raises(AlertConfigError, match="connection crm_sync_alerts: extra notifier must be .* not a string"):
        notifier_class("crm_sync_alerts", {"class": "os.system"})

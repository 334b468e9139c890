"""Alerts reach a Slack-compatible webhook (a local HTTP receiver) or an Airflow notifier, per
profile or globally, with names, counts and the report link only; a plain http webhook to another
host, or a notifier that is not Airflow's, is refused and never used."""

from __future__ import annotations

import json
import os

import pytest
from airflow.sdk import BaseNotifier
from crm_sync import alerts
from crm_sync.alerts import Alert
from crm_sync.pipeline.run_failed import RunFailedNotifier

from tests.contract.ghl_sim import webhook_receiver

pytestmark = [pytest.mark.integration]
RUN_ID = "scheduled__2026-11-30T00:00:00+00:00"
SENT_TO_NOTIFIER: list[tuple[str, dict]] = []


class RecordingNotifier(BaseNotifier):
    """An Airflow notifier as a user would name one in the connection (a Slack or SMTP one, say)."""

    template_fields = ("text",)

    def __init__(self, text: str, channel: str):
        super().__init__()
        self.text, self.channel = text, channel

    def notify(self, context) -> None:
        SENT_TO_NOTIFIER.append((self.text, context["crm_sync_alert"]))


class NotANotifier:
    """Called like a notifier, but not a BaseNotifier: a connection must not be able to run it."""

    def __init__(self, *args, **kwargs):
        SENT_TO_NOTIFIER.append(("NotANotifier", kwargs))

    def __call__(self, context) -> None:
        SENT_TO_NOTIFIER.append(("NotANotifier()", context))


def set_alert_conn(monkeypatch, conn_id: str, **conn) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http", **conn}))


def bodies(receiver) -> list[dict]:
    return [json.loads(body) for _, body in receiver.received]


def test_an_alert_carries_profile_run_counts_and_the_report_link_to_the_global_webhook(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    with webhook_receiver(fail_first=1) as receiver:  # a webhook's passing 500 is retried
        set_alert_conn(monkeypatch, "crm_sync_alerts", host=receiver.url)
        assert alerts.send(Alert("rows_failed", profile="gymdesk", dag_id="ghl_gymdesk", run_id=RUN_ID,
                                 counts={"failed": 3, "sent": 40}))
    assert len(receiver.received) == 2
    body = bodies(receiver)[-1]
    link = "https://airflow.example.com/crm-sync/dags/ghl_gymdesk/runs/scheduled__2026-11-30T00%3A00%3A00%2B00%3A00"
    assert body["link"] == link and body["counts"] == {"failed": 3, "sent": 40}
    assert body["text"].startswith("crm-sync rows failed for good") and link in body["text"]
    assert "profile=gymdesk" in body["text"] and f"run={RUN_ID}" in body["text"] and "failed=3" in body["text"]


def test_a_profile_connection_wins_over_the_global_one_and_may_name_an_airflow_notifier(monkeypatch):
    SENT_TO_NOTIFIER.clear()
    with webhook_receiver() as global_hook, webhook_receiver() as gym_hook:
        set_alert_conn(monkeypatch, "crm_sync_alerts", host=global_hook.url)
        set_alert_conn(monkeypatch, "crm_sync_alerts__gymdesk", host=gym_hook.url, extra={
            "notifier": f"{__name__}.RecordingNotifier", "notifier_kwargs": {"channel": "#ops"}})
        assert alerts.send(Alert("quality_breach", profile="gymdesk", dag_id="ghl_gymdesk", run_id=RUN_ID,
                                 counts={"rows": 100, "newly_bad": 9}))
        assert alerts.send(Alert("quality_breach", profile="gist", dag_id="ghl_gist", run_id=RUN_ID))
    assert [b["profile"] for b in bodies(gym_hook)] == ["gymdesk"]
    assert [b["profile"] for b in bodies(global_hook)] == ["gist"]
    assert [(text.split(" | ")[0], alert["kind"]) for text, alert in SENT_TO_NOTIFIER] == [
        ("crm-sync data-quality threshold breached: nothing was written", "quality_breach")]


def test_an_undeliverable_alert_is_logged_without_the_webhook_url_and_never_raises(monkeypatch, caplog):
    set_alert_conn(monkeypatch, "crm_sync_alerts", host="http://127.0.0.1:9/secret-hook-T0K3N")
    assert not alerts.send(Alert("run_failed", profile="gymdesk", dag_id="ghl_gymdesk", run_id=RUN_ID))
    assert "T0K3N" not in caplog.text and "alert run_failed" in caplog.text
    monkeypatch.delenv("AIRFLOW_CONN_CRM_SYNC_ALERTS")
    assert not alerts.send(Alert("run_failed", profile="gymdesk"))  # none configured: a warning, no error


def test_the_failed_run_notifier_sends_the_run_and_its_counts_from_the_warehouse(monkeypatch, tmp_path):
    from crm_sync.dag_factory import build_dag
    from crm_sync.pipeline.context import RunContext, log_step
    from crm_sync.profile import profile_by_name
    from crm_sync.warehouse.db import engine

    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'warehouse.db'}")
    ctx = RunContext(profile_by_name("gymdesk"), RUN_ID, "scheduled")
    with engine(f"sqlite:///{tmp_path / 'warehouse.db'}").begin() as conn:
        log_step(conn, ctx, "validate", {"passed": True})
    with webhook_receiver() as receiver:
        set_alert_conn(monkeypatch, "crm_sync_alerts", host=receiver.url)
        dag = build_dag(ctx.profile)  # the DAG the dag-processor runs the callback with
        assert isinstance(dag.on_failure_callback, RunFailedNotifier)
        RunFailedNotifier("gymdesk")({"dag": dag, "run_id": RUN_ID, "reason": "task_failure"})
        # a run failed by its data-quality threshold was alerted by validate already: not twice
        with engine(f"sqlite:///{tmp_path / 'warehouse.db'}").begin() as conn:
            log_step(conn, RunContext(ctx.profile, "manual__2", "manual"), "validate", {"passed": False})
        RunFailedNotifier("gymdesk")({"dag": dag, "run_id": "manual__2", "reason": "task_failure"})
    assert [(b["kind"], b["run_id"], b["counts"]) for b in bodies(receiver)] == [
        ("run_failed", RUN_ID, {"extracted": 0, "quarantined": 0, "writes_sent": 0, "writes_failed": 0})]


def test_a_plain_http_webhook_to_another_host_is_refused_before_any_request(monkeypatch, caplog):
    """Plain http would carry the URL's secret in clear. The host is reachable here (the local
    receiver is the HTTP proxy), and still nothing is sent, and the log names the connection, not the URL."""
    with webhook_receiver() as receiver:
        for variable in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv("HTTP_PROXY", receiver.url.removesuffix("/hook"))
        set_alert_conn(monkeypatch, "crm_sync_alerts__gymdesk", host="http://hooks.example.com/hook?token=T0K3N")
        assert not alerts.send(Alert("rows_failed", profile="gymdesk", dag_id="ghl_gymdesk", run_id=RUN_ID))
        assert receiver.received == []
        set_alert_conn(monkeypatch, "crm_sync_alerts__gymdesk", host="http://hooks.example.com/hook")
        monkeypatch.setattr(alerts, "webhook_url", lambda conn_id, url: url)  # the same send without the rule:
        assert alerts.send(Alert("rows_failed", profile="gymdesk", dag_id="ghl_gymdesk", run_id=RUN_ID))
        assert len(receiver.received) == 1  # it would have reached the host
    refusal = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert refusal == ["alert rows_failed not sent to the webhook: connection crm_sync_alerts__gymdesk: the webhook "
                       "must be an https:// URL (plain http only to loopback: 127.0.0.0/8, ::1, localhost); "
                       "it is http://hooks.example.com/..."]
    assert "T0K3N" not in caplog.text and "webhook attempt" not in caplog.text


@pytest.mark.parametrize("path", ["os.system", f"{__name__}.NotANotifier", "json.dumps"])
def test_a_notifier_that_is_not_an_airflow_notifier_is_refused_and_never_called(monkeypatch, caplog, path):
    SENT_TO_NOTIFIER.clear()
    system_calls = []
    monkeypatch.setattr(os, "system", lambda *args, **kwargs: system_calls.append((args, kwargs)) or 0)
    with webhook_receiver() as receiver:
        set_alert_conn(monkeypatch, "crm_sync_alerts", host=receiver.url, extra={
            "notifier": path, "notifier_kwargs": {"command": "touch /tmp/crm-sync-pwned"}})
        assert not alerts.send(Alert("quality_breach", profile="gymdesk", dag_id="ghl_gymdesk", run_id=RUN_ID))
    assert system_calls == [] and SENT_TO_NOTIFIER == []
    assert [b["kind"] for b in bodies(receiver)] == ["quality_breach"]  # the webhook still took it
    assert (f"alert quality_breach not sent to the notifier: connection crm_sync_alerts: extra notifier must be the "
            f"dotted path of a subclass of airflow.sdk.BaseNotifier; {path} is not one, so it is not called"
            in caplog.text)

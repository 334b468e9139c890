"""The apps' own webhooks over real sockets: an app simulator's change is signed and delivered to the
receiver (served on a real port, as in the api-server at /crm-sync), verified with the secret of the
app's Airflow connection, and kept once in a real warehouse (SQLite and PostgreSQL); a forged one is
refused and nothing stored; past a cap the answer is 429. No Airflow scheduler: the wake-up is
recorded, not run."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from crm_sync.profile_webhooks import app_asset
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.tables import webhook_inbox
from crm_sync.web.routes import receiver as ghl_receiver
from crm_sync.web.routes import receiver_app
from crm_sync.webhooks.app_secrets import AppSecrets
from crm_sync.webhooks.settings import WebhookSettings
from crm_sync.webhooks.trigger import Coalescer
from harness.simulators import generic, gist, ghl_keys, gymdesk, gymflow, mygadgetrepairs
from harness.simulators.app_push import register_target
from harness.simulators.base import ServerThread, SimState

from tests.conftest import APP_KEY, CLIENT_ID, CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "loc-app-webhooks"
SECRET = "whsec-integration-7f3a"
PRIVATE = "private.member@example.org"  # body content that must never reach INFO logs
SIMULATORS = {"gymdesk": lambda: gymdesk.create_app(APP_KEY, SimState()),
              "gymflow": lambda: gymflow.create_app(APP_KEY, SimState()),
              "mygadgetrepairs": lambda: mygadgetrepairs.create_app(APP_KEY, SimState()),
              "gist": lambda: gist.create_app(APP_KEY, SimState()),
              "generic": lambda: generic.create_app(CLIENT_ID, CLIENT_SECRET, SimState())}
# One contact and one of its tasks per app, seeded as an edit in the app's admin would make them.
SEEDS = {
    "gymdesk": ("contact", {"members": [{"id": "mem_1", "email": PRIVATE}],
                            "tasks": [{"id": "tsk_1", "member_id": "mem_1", "title": "Call"}]}, "mem_1", "tsk_1"),
    "gymflow": ("contact", {"contacts": [{"id": "c0ffee", "email": PRIVATE}],
                            "tasks": [{"id": "7a5c", "contact_id": "c0ffee", "title": "Call"}]}, "c0ffee", "7a5c"),
    "mygadgetrepairs": ("customer", {"customers": [{"id": 41, "email": PRIVATE}],
                                     "tasks": [{"id": 9, "customer": {"internal_id": 41}, "title": "Fix"}]}, "41", "9"),
    "gist": ("contact", {"contacts": [{"id": 5, "email": PRIVATE}],
                         "tasks": [{"id": 6, "contact_id": 5, "title": "Call"}]}, "5", "6"),
    "generic": ("contact", {"contacts": [{"contactId": "c-1", "email": PRIVATE}],
                            "tasks": [{"taskId": "t-1", "contactId": "c-1", "title": "Call"}]}, "c-1", "t-1"),
}


class Inbox:
    """Our receivers on a real port under /crm-sync, over ``url``'s warehouse and a copy of the built-in
    profiles (gymdesk naming LOCATION); the apps' secrets read from their Airflow connections."""

    def __init__(self, tmp_path: Path, url: str, **settings):
        self.profiles = tmp_path / "profiles"
        self.profiles.mkdir(exist_ok=True)
        for path in (ROOT / "include/profiles").glob("*.yaml"):
            text = path.read_text()
            if path.stem == "gymdesk":
                text = text.replace("  conn_id: ghl_default\n", f"  conn_id: ghl_default\n  location_id: {LOCATION}\n")
            (self.profiles / path.name).write_text(text)
        self.woken: list[str] = []
        self.engine = engine(url)
        config = WebhookSettings(**{"public_key": ghl_keys.TEST_PUBLIC_KEY_SPKI_B64, "trigger_interval_s": 0.01,
                                    **settings})
        target = ghl_receiver.Receiver.build(config, Coalescer(self._wake, 0.01), self.engine, self.profiles)
        console = FastAPI()
        console.include_router(ghl_receiver.router)
        console.include_router(receiver_app.router)
        console.dependency_overrides[ghl_receiver.receiver] = lambda: target
        secrets = AppSecrets()
        console.dependency_overrides[receiver_app.app_secrets] = lambda: secrets
        root = FastAPI()
        root.mount("/crm-sync", console)
        self.server = ServerThread(root).__enter__()
        self.url = self.server.url + "/crm-sync/webhooks/app/"

    def _wake(self, asset: str) -> bool:
        self.woken.append(asset)
        return True

    def rows(self) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(webhook_inbox).order_by(webhook_inbox.c.id)).all()

    def close(self) -> None:
        self.server.__exit__(None, None, None)
        self.engine.dispose()


@pytest.fixture
def connections(monkeypatch):
    """Every app's Airflow connection, holding the webhook secret in its extra ``webhook_secret``."""
    for name in SIMULATORS:
        monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}_DEFAULT", json.dumps(
            {"conn_type": "crm_sync_app", "host": "http://127.0.0.1:9", "password": APP_KEY,
             "extra": {"webhook_secret": SECRET}}))


@pytest.fixture
def inbox(tmp_path, warehouse_url, connections, caplog):
    caplog.set_level(logging.INFO)
    served = Inbox(tmp_path, warehouse_url)
    yield served
    served.close()


class App:
    """An app simulator on a real port, its webhooks aimed at our receiver."""

    def __init__(self, name: str, target: str, secret: str = SECRET):
        self.name = name
        self.server = ServerThread(SIMULATORS[name]()).__enter__()
        self.admin = httpx.Client(base_url=self.server.url + "/_sim", timeout=10)
        assert register_target(self.server.url, target + name, secret) == [target + name]

    def deliveries(self, count: int, timeout_s: float = 15) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = self.admin.get("/webhooks/deliveries").json()
            if len(done) >= count:
                return done
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: {count} deliveries expected, got {done}")

    def close(self) -> None:
        self.admin.close()
        self.server.__exit__(None, None, None)


@pytest.fixture
def gymdesk_app(inbox):
    app = App("gymdesk", inbox.url)
    yield app
    app.close()


def test_a_change_made_through_the_apps_api_is_stored_once_and_wakes_the_profile(inbox, gymdesk_app, caplog):
    api = httpx.Client(base_url=gymdesk_app.server.url, headers={"X-API-Key": APP_KEY}, timeout=10)
    member = api.post("/v1/members", json={"data": {"email": PRIVATE, "first_name": "Pat"}}).json()["data"]
    task = api.post("/v1/tasks", json={"data": {"member_id": member["id"], "title": "Call"}}).json()["data"]
    api.patch(f"/v1/members/{member['id']}", json={"data": {"phone": "+15550100"}}).raise_for_status()
    api.delete(f"/v1/tasks/{task['id']}").raise_for_status()
    delivered = gymdesk_app.deliveries(4)
    assert [(d["type"], d["status"], d["delivered"]) for d in delivered] == [
        ("member.created", 200, True), ("task.created", 200, True), ("member.updated", 200, True),
        ("task.deleted", 200, True)]
    rows = inbox.rows()
    assert [(r.source, r.webhook_id, r.location_id, r.event_type, r.entity, r.object_id, r.contact_id, r.routed)
            for r in rows] == [
        ("app:gymdesk", f"app:gymdesk:{d['id']}", LOCATION, d["type"], entity, obj, member["id"], True)
        for d, entity, obj in zip(delivered, ("contact", "task", "contact", "task"),
                                  (member["id"], task["id"], member["id"], task["id"]), strict=True)]
    assert [r.payload for r in rows] == [d["body"] for d in delivered]
    assert all(r.payload_bytes == len(json.dumps(d["body"]).encode()) for r, d in zip(rows, delivered, strict=True))
    deadline = time.monotonic() + 5
    while not inbox.woken and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(inbox.woken) == {app_asset("gymdesk")}
    assert PRIVATE not in caplog.text


def test_a_redelivery_is_a_duplicate_and_a_forgery_is_refused_with_nothing_stored(inbox, gymdesk_app, caplog):
    gymdesk_app.admin.post("/seed", json={"members": [{"id": "mem_9", "email": PRIVATE}]}).raise_for_status()
    sent = gymdesk_app.deliveries(1)[0]
    raw = json.dumps(sent["body"]).encode()
    signing = gymdesk.PUSH.signing
    again = httpx.post(inbox.url + "gymdesk", content=raw, headers=signing.headers(raw, SECRET))
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert len(inbox.rows()) == 1
    forged_body = json.dumps({**sent["body"], "id": "evt_forged"}).encode()
    attempts = {
        "wrong secret": (forged_body, signing.headers(forged_body, "not-the-secret")),
        "unsigned": (forged_body, {"Content-Type": "application/json"}),
        "altered": (forged_body, signing.headers(raw, SECRET)),
        "stale": (forged_body, {**signing.headers(forged_body, SECRET), "X-Gymdesk-Timestamp": "2020-01-01T00:00:00Z"}),
    }
    for reason, (body, headers) in attempts.items():
        answer = httpx.post(inbox.url + "gymdesk", content=body, headers=headers)
        assert answer.status_code == 401, (reason, answer.text)
        assert PRIVATE not in answer.text
    assert [r.webhook_id for r in inbox.rows()] == [f"app:gymdesk:{sent['id']}"]
    assert PRIVATE not in caplog.text and SECRET not in caplog.text


def test_past_a_cap_the_app_gets_429_with_retry_after_and_nothing_is_stored(tmp_path, warehouse_url, connections):
    capped = Inbox(tmp_path, warehouse_url, max_events_per_minute=2)
    try:
        signing = gymflow.PUSH.signing
        answers = []
        for n in range(3):
            raw = json.dumps({"event_id": f"e{n}", "event": "contact.updated", "entity": "contact",
                              "object": {"id": f"c{n}"}}).encode()
            answers.append(httpx.post(capped.url + "gymflow", content=raw, headers=signing.headers(raw, SECRET)))
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert "webhook_max_events_per_minute" in answers[2].json()["detail"]
        assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
        assert [r.object_id for r in capped.rows()] == ["c0", "c1"]
        # Caps are per sender: another app (and GHL) still get through.
        raw = json.dumps({"id": "g1", "topic": "contact.created", "data": {"id": 3}}).encode()
        other = httpx.post(capped.url + "gist", content=raw, headers=gist.PUSH.signing.headers(raw, SECRET))
        assert other.status_code == 200, other.text
    finally:
        capped.close()


@pytest.mark.parametrize("name", sorted(SIMULATORS))
def test_every_built_in_apps_admin_edit_arrives_signed_and_matches_its_profile(tmp_path, connections, name):
    inbox = Inbox(tmp_path, f"sqlite:///{tmp_path / 'warehouse.db'}")
    app = App(name, inbox.url)
    try:
        _, seed, contact_id, task_id = SEEDS[name]
        app.admin.post("/seed", json=seed).raise_for_status()
        delivered = app.deliveries(2)
        assert [d["status"] for d in delivered] == [200, 200], delivered
        rows = inbox.rows()
        location = LOCATION if name == "gymdesk" else "-"  # the profile's ghl.location_id, else "-"
        assert [(r.source, r.entity, r.object_id, r.contact_id, r.location_id) for r in rows] == [
            (f"app:{name}", "contact", contact_id, contact_id, location),
            (f"app:{name}", "task", task_id, contact_id, location)]
        if name == "mygadgetrepairs":  # no event id: the body's digest
            assert all(r.webhook_id.startswith("app:mygadgetrepairs:sha256:") for r in rows)
        else:
            assert [r.webhook_id for r in rows] == [f"app:{name}:{d['id']}" for d in delivered]
    finally:
        app.close()
        inbox.close()


def test_a_body_without_a_record_id_is_a_400_naming_the_rule_and_an_unmapped_type_is_ignored(inbox):
    signing = gist.PUSH.signing
    raw = json.dumps({"id": "g1", "topic": "contact.updated", "data": {"email": PRIVATE}}).encode()
    bad = httpx.post(inbox.url + "gist", content=raw, headers=signing.headers(raw, SECRET))
    assert bad.status_code == 400 and "app.webhooks.event.record_id" in bad.json()["detail"]
    assert PRIVATE not in bad.text
    raw = json.dumps({"id": "g2", "topic": "conversation.opened", "data": {"id": 1}}).encode()
    ignored = httpx.post(inbox.url + "gist", content=raw, headers=signing.headers(raw, SECRET))
    assert (ignored.status_code, ignored.json()) == (202, {"status": "ignored"})
    big = json.dumps({"id": "g3", "topic": "contact.updated", "data": {"id": 1, "x": "y" * 300_000}}).encode()
    assert httpx.post(inbox.url + "gist", content=big, headers=signing.headers(big, SECRET)).status_code == 413
    assert inbox.rows() == []


def test_a_profile_that_does_not_receive_is_404_and_a_missing_secret_is_503_naming_it(inbox, monkeypatch, caplog):
    raw = json.dumps({"id": "g1", "topic": "contact.updated", "data": {"id": 1}}).encode()
    headers = gist.PUSH.signing.headers(raw, SECRET)
    for name in ("csv_import", "nobody"):
        assert httpx.post(inbox.url + name, content=raw, headers=headers).status_code == 404
    monkeypatch.setenv("AIRFLOW_CONN_GIST_DEFAULT", json.dumps({"conn_type": "crm_sync_app", "password": SECRET}))
    unset = httpx.post(inbox.url + "gist", content=raw, headers=headers)
    assert unset.status_code == 503
    said = "the app's connection gist_default has no extra webhook_secret (the webhook secret)"
    assert unset.json()["detail"] == said
    assert SECRET not in unset.text and SECRET not in caplog.text
    assert inbox.rows() == []


def test_an_app_simulator_sends_only_to_this_machine_and_only_with_a_secret():
    with ServerThread(gymflow.create_app(APP_KEY, SimState())) as server:
        admin = httpx.Client(base_url=server.url + "/_sim", timeout=10)
        outside = admin.post("/webhooks", json={"url": "http://example.org/hook", "secret": SECRET})
        assert outside.status_code == 400 and "on this machine" in outside.json()["message"]
        unsigned = admin.post("/webhooks", json={"url": "http://127.0.0.1:9/hook"})
        assert unsigned.status_code == 400 and "secret" in unsigned.json()["message"]
        assert admin.get("/webhooks/deliveries").json() == []


def test_tagging_a_gist_contact_is_a_change_its_webhook_reports(tmp_path, connections):
    inbox = Inbox(tmp_path, f"sqlite:///{tmp_path / 'warehouse.db'}")
    app = App("gist", inbox.url)
    try:
        app.admin.post("/seed", json={"contacts": [{"id": 5, "email": PRIVATE, "tags": []}]}).raise_for_status()
        tagged = httpx.post(app.server.url + "/tags", headers={"Authorization": f"Bearer {APP_KEY}"},
                            json={"tag": {"name": "vip"}, "contacts": [{"id": 5}]}, timeout=10)
        assert tagged.status_code == 200, tagged.text
        delivered = app.deliveries(2)
        assert [d["type"] for d in delivered] == ["contact.created", "contact.updated"]
        assert delivered[1]["body"]["data"]["tags"] == [{"id": 1, "name": "vip"}]
        assert [(r.event_type, r.object_id) for r in inbox.rows()] == [("contact.created", "5"), ("contact.updated", "5")]
    finally:
        app.close()
        inbox.close()

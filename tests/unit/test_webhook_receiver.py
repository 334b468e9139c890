"""The GHL webhook receiver at the HTTP level: what it accepts, stores, refuses, and never logs."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crm_sync.warehouse.db import engine
from crm_sync.warehouse.tables import webhook_inbox, webhook_unrouted
from crm_sync.web.routes import receiver as ghl_receiver
from crm_sync.webhooks.settings import GHL_RSA_PUBLIC_KEY, WebhookSettings
from crm_sync.webhooks.trigger import Coalescer
from harness.simulators import ghl_keys

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "loc-webhooks-1"
SECRET_LOOKING = "private.person@example.org"  # body content that must never reach INFO logs


def event(**fields) -> dict:
    return {"type": "NoteCreate", "locationId": LOCATION, "id": "note1", "contactId": "contact1",
            "body": f"call {SECRET_LOOKING}", "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "webhookId": str(uuid.uuid4()), **fields}


def signed(body: dict | bytes, key: Ed25519PrivateKey | None = None) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, {"Content-Type": "application/json", "X-GHL-Signature": ghl_keys.sign(raw, key)}


def write_profile(profiles: Path, name: str, location: str, retention_days: int | None = 90) -> None:
    """A copy of a shipped profile that names ``location``, kept ``retention_days`` (None: forever)."""
    text = (ROOT / f"include/profiles/{name}.yaml").read_text().replace(
        "  conn_id: ghl_default\n", f"  conn_id: ghl_default\n  location_id: {location}\n", 1)
    days = "null" if retention_days is None else retention_days
    (profiles / f"{name}.yaml").write_text(text + f"\nretention_days: {days}\n")


class Receiver:
    def __init__(self, tmp_path: Path, url: str, **settings):
        self.profiles = tmp_path / "profiles"
        self.profiles.mkdir(exist_ok=True)
        write_profile(self.profiles, "gymdesk", LOCATION)
        self.woken: list[str] = []
        self.engine = engine(url)
        config = WebhookSettings(**{"public_key": ghl_keys.TEST_PUBLIC_KEY_SPKI_B64, "trigger_interval_s": 0.01,
                                    **settings})
        self.target = ghl_receiver.Receiver.build(config, Coalescer(self._wake, config.trigger_interval_s),
                                                  self.engine, self.profiles)
        app = FastAPI()
        app.include_router(ghl_receiver.router)
        app.dependency_overrides[ghl_receiver.receiver] = lambda: self.target
        self.client = TestClient(app)

    def _wake(self, asset: str) -> bool:
        self.woken.append(asset)
        return True

    def post(self, raw: bytes, headers: dict[str, str]):
        return self.client.post("/webhooks/ghl", content=raw, headers=headers)

    def rows(self) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(webhook_inbox).order_by(webhook_inbox.c.id)).all()

    def unrouted(self) -> list[tuple]:
        with self.engine.connect() as conn:
            return [(r.location_id, r.event_type, r.count) for r in conn.execute(
                sa.select(webhook_unrouted).order_by(webhook_unrouted.c.location_id, webhook_unrouted.c.event_type))]


@pytest.fixture
def receiver(tmp_path, caplog) -> Receiver:
    caplog.set_level(logging.INFO)
    return Receiver(tmp_path, f"sqlite:///{tmp_path / 'warehouse.db'}")


def test_unsigned_forged_and_altered_bodies_are_refused(receiver, caplog):
    raw, headers = signed(event())
    unsigned = {"Content-Type": "application/json"}
    forged = signed(event(), Ed25519PrivateKey.generate())
    altered = raw.replace(b"note1", b"note2")
    not_base64 = {**headers, "X-GHL-Signature": "%%%"}
    for attempt_raw, attempt_headers in ((raw, unsigned), forged, (altered, headers), (raw, not_base64)):
        answer = receiver.post(attempt_raw, attempt_headers)
        assert answer.status_code == 401, answer.text
    assert receiver.rows() == []
    assert SECRET_LOOKING not in caplog.text and "note1" not in caplog.text


@pytest.mark.parametrize("age", [timedelta(minutes=6), -timedelta(minutes=6)])
def test_a_timestamp_outside_five_minutes_is_refused(receiver, age):
    stale = (datetime.now(UTC) - age).isoformat()
    answer = receiver.post(*signed(event(timestamp=stale)))
    assert answer.status_code == 401 and "timestamp" in answer.json()["detail"]
    assert receiver.rows() == []
    fresh = (datetime.now(UTC) - timedelta(minutes=4)).isoformat()
    assert receiver.post(*signed(event(timestamp=fresh))).status_code == 200


def test_signed_but_malformed_bodies_are_bad_requests(receiver, caplog):
    for raw in (b'{"type": "NoteCreate", "body": "' + SECRET_LOOKING.encode() + b'"',  # cut short
                json.dumps(["not", "an", "object"]).encode(),
                json.dumps({k: v for k, v in event().items() if k != "webhookId"}).encode()):
        answer = receiver.post(*signed(raw))
        assert answer.status_code == 400, answer.text
    assert receiver.rows() == []
    assert SECRET_LOOKING not in caplog.text


def test_a_body_over_the_limit_is_refused_before_it_is_read(tmp_path):
    receiver = Receiver(tmp_path, f"sqlite:///{tmp_path / 'warehouse.db'}", max_body_bytes=1024)
    answer = receiver.post(*signed(event(body="x" * 2000)))
    assert answer.status_code == 413
    assert receiver.post(*signed(event(body="x" * 100))).status_code == 200


def test_an_unknown_location_is_counted_by_type_its_payload_kept_nowhere(tmp_path, receiver, caplog):
    stranger = "somebody-elses-location"
    for kind in ("NoteCreate", "NoteCreate", "ContactUpdate"):
        answer = receiver.post(*signed(event(locationId=stranger, type=kind)))
        assert (answer.status_code, answer.json()) == (202, {"status": "unrouted"})
    assert receiver.rows() == []
    assert receiver.unrouted() == [(stranger, "ContactUpdate", 1), (stranger, "NoteCreate", 2)]
    receiver.engine.dispose()  # the warehouse's files on disk, its write-ahead log too, hold no byte of a body
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("warehouse.db*"))
    assert stranger.encode() in stored and SECRET_LOOKING.encode() not in stored and b"contact1" not in stored
    time.sleep(0.05)
    assert receiver.woken == [] and SECRET_LOOKING not in caplog.text


def _rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, pem.decode()


def test_the_legacy_rsa_signature_counts_only_when_enabled(tmp_path):
    key, pem = _rsa_pair()
    raw = json.dumps(event()).encode()
    headers = {"Content-Type": "application/json",
               "X-WH-Signature": base64.b64encode(key.sign(raw, padding.PKCS1v15(), hashes.SHA256())).decode()}
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    assert Receiver(tmp_path, url, rsa_public_key=pem).post(raw, headers).status_code == 401
    legacy = Receiver(tmp_path, url, rsa_public_key=pem, legacy_rsa=True)
    assert legacy.post(raw, headers).status_code == 200
    assert legacy.post(raw.replace(b"note1", b"note9"), headers).status_code == 401


def test_while_ghl_rotates_its_key_events_signed_with_the_old_or_the_new_key_are_accepted(tmp_path):
    new = Ed25519PrivateKey.generate()
    new_spki = base64.b64encode(new.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    rotating = Receiver(tmp_path, url, public_key=f"{ghl_keys.TEST_PUBLIC_KEY_SPKI_B64}, {new_spki}")
    assert rotating.post(*signed(event())).status_code == 200  # the old key
    assert rotating.post(*signed(event(), new)).status_code == 200  # the new one
    assert rotating.post(*signed(event(), Ed25519PrivateKey.generate())).status_code == 401  # neither
    assert len(rotating.rows()) == 2


def test_ghls_published_key_is_the_default():
    assert WebhookSettings().public_key == "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg="
    assert WebhookSettings().legacy_rsa is False


# ------------------------------------------------------------------ caps, appId, configuration

def test_past_the_events_per_minute_cap_a_location_gets_429_with_retry_after_and_nothing_stored(tmp_path):
    receiver = Receiver(tmp_path, f"sqlite:///{tmp_path / 'warehouse.db'}", max_events_per_minute=3)
    write_profile(receiver.profiles, "gist", "loc-webhooks-2")
    first = event()
    assert [receiver.post(*signed(body)).status_code for body in (first, event(), event())] == [200] * 3
    over = receiver.post(*signed(event(id="note4")))
    assert over.status_code == 429 and "webhook_max_events_per_minute" in over.json()["detail"]
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert len(receiver.rows()) == 3 and "note4" not in {r.object_id for r in receiver.rows()}
    assert receiver.post(*signed(first)).json() == {"status": "duplicate"}  # a redelivery stores nothing: no 429
    assert receiver.post(*signed(event(locationId="loc-webhooks-2"))).status_code == 200  # per location


def test_past_the_stored_bytes_cap_a_location_gets_429_until_room_is_made(tmp_path):
    size = len(signed(event(body="x" * 1000))[0])
    receiver = Receiver(tmp_path, f"sqlite:///{tmp_path / 'warehouse.db'}", max_stored_bytes=int(size * 2.5),
                        prune_interval_s=900)
    assert [receiver.post(*signed(event(body="x" * 1000))).status_code for _ in range(2)] == [200, 200]
    over = receiver.post(*signed(event(body="x" * 1000)))
    assert over.status_code == 429 and "webhook_max_stored_bytes" in over.json()["detail"]
    assert over.headers["Retry-After"] == "900"
    assert len(receiver.rows()) == 2 and {r.payload_bytes for r in receiver.rows()} == {size}
    assert receiver.post(*signed(event(body="small"))).status_code == 200  # what still fits is taken


def test_an_event_of_another_app_is_refused_when_webhook_app_id_is_set(tmp_path, caplog):
    receiver = Receiver(tmp_path, f"sqlite:///{tmp_path / 'warehouse.db'}", app_id="our-app")
    for body, reason in ((event(appId="their-app"), "appId is not webhook_app_id"),
                         (event(), "no appId, and webhook_app_id is set")):
        answer = receiver.post(*signed(body))
        assert (answer.status_code, answer.json()["detail"]) == (401, reason)
    assert receiver.rows() == [] and receiver.unrouted() == []
    assert receiver.post(*signed(event(appId="our-app"))).status_code == 200
    unchecked = Receiver(tmp_path, f"sqlite:///{tmp_path / 'warehouse.db'}")
    assert unchecked.post(*signed(event(appId="any-app"))).status_code == 200


@pytest.fixture
def airflow_receiver(tmp_path, monkeypatch):
    """The route with the real dependency: its settings read from Airflow's config (environment)."""
    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'warehouse.db'}")
    ghl_receiver._receiver.cache_clear()
    engine.cache_clear()  # engine() with no URL: this test's WAREHOUSE_URL, not another test's
    app = FastAPI()
    app.include_router(ghl_receiver.router)
    yield TestClient(app)
    ghl_receiver._receiver.cache_clear()
    engine.cache_clear()


@pytest.mark.parametrize(("setting", "value", "named"), [
    ("WEBHOOK_PUBLIC_KEY", "", "[crm_sync] webhook_public_key is empty"),
    ("WEBHOOK_PUBLIC_KEY", "bm90IGEga2V5", "[crm_sync] webhook_public_key is not an Ed25519 public key"),
    ("WEBHOOK_PUBLIC_KEY", GHL_RSA_PUBLIC_KEY, "[crm_sync] webhook_public_key is not an Ed25519 public key"),
    ("WEBHOOK_MAX_EVENTS_PER_MINUTE", "lots", "[crm_sync] webhook_max_events_per_minute is not a usable int"),
    ("WEBHOOK_PRUNE_INTERVAL_SECONDS", "0", "[crm_sync] webhook_prune_interval_seconds is 0"),
])
def test_an_unusable_setting_is_a_503_naming_it_and_logged(airflow_receiver, monkeypatch, caplog, setting, value,
                                                           named):
    monkeypatch.setenv(f"AIRFLOW__CRM_SYNC__{setting}", value)
    for _ in range(2):  # not cached: every request says it, until the setting is fixed
        answer = airflow_receiver.post("/webhooks/ghl", content=b"{}", headers={"X-GHL-Signature": "AA=="})
        assert answer.status_code == 503 and named in answer.json()["detail"], answer.text
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and named in errors[0].getMessage()
    monkeypatch.delenv(f"AIRFLOW__CRM_SYNC__{setting}")
    monkeypatch.setenv("AIRFLOW__CRM_SYNC__WEBHOOK_PUBLIC_KEY", ghl_keys.TEST_PUBLIC_KEY_SPKI_B64)
    raw, headers = signed(event())
    answer = airflow_receiver.post("/webhooks/ghl", content=raw, headers=headers)
    assert answer.status_code == 202  # fixed: the same process serves (the tests' profiles name no location)


def test_an_unusable_key_is_named_in_the_api_servers_start_up_log(monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW__CRM_SYNC__WEBHOOK_PUBLIC_KEY", "")
    assert ghl_receiver.check_settings() is False
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["the GHL webhook receiver cannot start: [crm_sync] webhook_public_key is empty: set it to GHL's "
                      "current key, or unset it for the default; it answers 503 until that is fixed"]
    app = Path(ghl_receiver.__file__).parents[1] / "app.py"
    assert "receiver.check_settings()" in app.read_text()  # called when the api-server loads the app
    monkeypatch.delenv("AIRFLOW__CRM_SYNC__WEBHOOK_PUBLIC_KEY")
    assert ghl_receiver.check_settings() is True


def test_the_caps_and_retention_have_defaults_and_are_read_from_airflow_config(monkeypatch):
    default = WebhookSettings()
    assert (default.app_id, default.max_events_per_minute, default.max_stored_bytes, default.retention_days,
            default.prune_interval_s) == ("", 1200, 256 * 1024 * 1024, None, 600)
    for key, value in (("APP_ID", " app-1 "), ("MAX_EVENTS_PER_MINUTE", "60"), ("MAX_STORED_BYTES", "0"),
                       ("RETENTION_DAYS", "30"), ("PRUNE_INTERVAL_SECONDS", "60")):
        monkeypatch.setenv(f"AIRFLOW__CRM_SYNC__WEBHOOK_{key}", value)
    read = WebhookSettings.from_airflow()
    assert (read.app_id, read.max_events_per_minute, read.max_stored_bytes, read.retention_days,
            read.prune_interval_s) == ("app-1", 60, 0, 30, 60)

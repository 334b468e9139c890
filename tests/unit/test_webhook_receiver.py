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
from crm_sync.warehouse.tables import webhook_inbox
from crm_sync.web.routes import receiver as ghl_receiver
from crm_sync.webhooks.settings import WebhookSettings
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


class Receiver:
    def __init__(self, tmp_path: Path, url: str, **settings):
        profiles = tmp_path / "profiles"
        profiles.mkdir(exist_ok=True)
        text = (ROOT / "include/profiles/gymdesk.yaml").read_text().replace(
            "  conn_id: ghl_default\n", f"  conn_id: ghl_default\n  location_id: {LOCATION}\n", 1)
        (profiles / "gymdesk.yaml").write_text(text)
        self.woken: list[str] = []
        self.engine = engine(url)
        config = WebhookSettings(public_key=ghl_keys.TEST_PUBLIC_KEY_SPKI_B64, trigger_interval_s=0.01, **settings)
        target = ghl_receiver.Receiver(config, Coalescer(self._wake, config.trigger_interval_s), self.engine,
                                   profiles)
        app = FastAPI()
        app.include_router(ghl_receiver.router)
        app.dependency_overrides[ghl_receiver.receiver] = lambda: target
        self.client = TestClient(app)

    def _wake(self, asset: str) -> bool:
        self.woken.append(asset)
        return True

    def post(self, raw: bytes, headers: dict[str, str]):
        return self.client.post("/webhooks/ghl", content=raw, headers=headers)

    def rows(self) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(webhook_inbox).order_by(webhook_inbox.c.id)).all()


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


def test_an_unknown_location_is_kept_unrouted_and_wakes_nothing(receiver):
    answer = receiver.post(*signed(event(locationId="somebody-elses-location")))
    assert (answer.status_code, answer.json()) == (202, {"status": "unrouted"})
    assert [(r.location_id, r.routed) for r in receiver.rows()] == [("somebody-elses-location", False)]
    time.sleep(0.05)
    assert receiver.woken == []


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


def test_ghls_published_key_is_the_default():
    assert WebhookSettings().public_key == "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg="
    assert WebhookSettings().legacy_rsa is False

"""Webhooks of the GHL simulator: events signed as GHL signs them (Ed25519, X-GHL-Signature),
delivered from a background thread to receivers on this machine only (webhook_delivery)."""

from __future__ import annotations

import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.simulators import ghl_keys
from harness.simulators.base import now_iso
from harness.simulators.webhook_delivery import Delivery


class Webhooks(Delivery):
    """GHL's events, each signed with the simulator's Ed25519 key, to every registered target."""

    thread_name = "ghl-webhooks"

    def __init__(self, key: Ed25519PrivateKey, max_attempts: int = 3, backoff_s: float = 0.2,
                 timeout_s: float = 5.0, idle_s: float = 2.0):
        super().__init__(max_attempts, backoff_s, timeout_s, idle_s)
        self.key = key

    def headers(self, url: str, raw: bytes) -> dict[str, str]:
        return {"X-GHL-Signature": ghl_keys.sign(raw, self.key)}

    def emit(self, event_type: str, location_id: str, fields: dict[str, Any]) -> None:
        """Queue one event for every target: the body GHL sends, plus timestamp and webhookId."""
        body = {"type": event_type, "locationId": location_id, **fields,
                "timestamp": now_iso(), "webhookId": str(uuid.uuid4())}
        self.send(body, {"webhookId": body["webhookId"], "type": event_type})

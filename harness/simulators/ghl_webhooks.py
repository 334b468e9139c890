"""Webhooks of the GHL simulator: events signed as GHL signs them (Ed25519, X-GHL-Signature),
delivered from a background thread to receivers on this machine only."""

from __future__ import annotations

import ipaddress
import json
import queue
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.simulators import ghl_keys
from harness.simulators.base import now_iso


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Webhooks:
    """Signs events and POSTs them to the registered targets from one background thread, so
    API answers never wait on a receiver; bounded retries; every delivery logged.

    The thread starts with the first event and ends after ``idle_s`` without one.
    """

    def __init__(self, key: Ed25519PrivateKey, max_attempts: int = 3, backoff_s: float = 0.2,
                 timeout_s: float = 5.0, idle_s: float = 2.0):
        self.key, self.max_attempts, self.backoff_s = key, max_attempts, backoff_s
        self.timeout_s, self.idle_s = timeout_s, idle_s
        self.targets: list[str] = []
        self.deliveries: list[dict[str, Any]] = []
        self._queue: queue.Queue[tuple[str, dict[str, Any], bytes]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def register(self, url: str) -> None:
        if not _loopback(url):
            raise ValueError("webhook targets must be on this machine (127.0.0.1 or localhost)")
        with self._lock:
            if url not in self.targets:
                self.targets.append(url)

    def emit(self, event_type: str, location_id: str, fields: dict[str, Any]) -> None:
        """Queue one event for every target: the body GHL sends, plus timestamp and webhookId."""
        body = {"type": event_type, "locationId": location_id, **fields,
                "timestamp": now_iso(), "webhookId": str(uuid.uuid4())}
        raw = json.dumps(body).encode()
        with self._lock:
            for url in self.targets:
                self._queue.put((url, body, raw))
            if self.targets and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ghl-webhooks", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while True:
                try:
                    url, body, raw = self._queue.get(timeout=self.idle_s)
                except queue.Empty:
                    with self._lock:
                        if self._queue.empty():
                            self._thread = None
                            return
                    continue
                self._deliver(client, url, body, raw)

    def _deliver(self, client: httpx.Client, url: str, body: dict[str, Any], raw: bytes) -> None:
        headers = {"Content-Type": "application/json", "X-GHL-Signature": ghl_keys.sign(raw, self.key)}
        record = {"webhookId": body["webhookId"], "type": body["type"], "url": url, "body": body,
                  "attempts": 0, "status": None, "error": None, "delivered": False}
        for attempt in range(1, self.max_attempts + 1):
            record["attempts"] = attempt
            try:
                response = client.post(url, content=raw, headers=headers)
                record["status"], record["error"] = response.status_code, None
                record["delivered"] = response.is_success
            except httpx.HTTPError as exc:
                record["status"], record["error"] = None, f"{type(exc).__name__}: {exc}"
            if record["delivered"]:
                break
            if attempt < self.max_attempts:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        with self._lock:
            self.deliveries.append(record)

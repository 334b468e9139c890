"""How every simulator delivers its webhooks (GHL's and the apps'): to receivers on this machine only,
from one background thread, so API answers never wait on a receiver; bounded retries with backoff;
every delivery logged. Each sender signs its own way (``headers``), per target and per attempt (a
signature that carries a timestamp is fresh on every attempt)."""

from __future__ import annotations

import ipaddress
import json
import queue
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx


def loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Delivery:
    """Targets (URL -> what signing needs, e.g. a shared secret) and the queue that serves them.

    The thread starts with the first event and ends after ``idle_s`` without one. Subclasses say how
    a body is signed (``headers``).
    """

    thread_name = "sim-webhooks"

    def __init__(self, max_attempts: int = 3, backoff_s: float = 0.2, timeout_s: float = 5.0, idle_s: float = 2.0):
        self.max_attempts, self.backoff_s = max_attempts, backoff_s
        self.timeout_s, self.idle_s = timeout_s, idle_s
        self.targets: dict[str, Any] = {}
        self.deliveries: list[dict[str, Any]] = []
        self._queue: queue.Queue[tuple[str, dict[str, Any], bytes, dict[str, Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def register(self, url: str, signing: Any = None) -> None:
        if not loopback(url):
            raise ValueError("webhook targets must be on this machine (127.0.0.1 or localhost)")
        with self._lock:
            self.targets[url] = signing

    def headers(self, url: str, raw: bytes) -> dict[str, str]:
        """The signature headers of one attempt to ``url``."""
        raise NotImplementedError

    def send(self, body: dict[str, Any], about: dict[str, Any]) -> None:
        """Queue ``body`` for every target; ``about`` heads its delivery log entries (its id, its type)."""
        raw = json.dumps(body).encode()
        with self._lock:
            for url in self.targets:
                self._queue.put((url, body, raw, about))
            if self.targets and self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while True:
                try:
                    url, body, raw, about = self._queue.get(timeout=self.idle_s)
                except queue.Empty:
                    with self._lock:
                        if self._queue.empty():
                            self._thread = None
                            return
                    continue
                self._deliver(client, url, body, raw, about)

    def _deliver(self, client: httpx.Client, url: str, body: dict[str, Any], raw: bytes, about: dict[str, Any]) -> None:
        record = {**about, "url": url, "body": body, "attempts": 0, "status": None, "error": None, "delivered": False}
        for attempt in range(1, self.max_attempts + 1):
            record["attempts"] = attempt
            try:
                headers = {"Content-Type": "application/json", **self.headers(url, raw)}
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

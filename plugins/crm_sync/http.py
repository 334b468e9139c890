"""One httpx client for every API we call: pacing, retries, error classification, metrics.

- A token bucket keeps us under the provider's burst limit; the rate-limit headers and
  429s slow it further (``Retry-After`` honoured).
- One classifier decides retriable (429, 5xx, transport errors) versus fatal (other 4xx).
- Only calls that are safe to repeat are retried, with jittered exponential backoff.
- Errors name the call and the server's message, never a header or a token.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from crm_sync.transport import checked_base_url, checked_path

log = logging.getLogger(__name__)
RETRIABLE_STATUS = {429, 500, 502, 503, 504}
MAX_PAUSE_S = 60.0  # the longest any server's header may pause us
MAX_ERROR_CHARS = 300  # a server's message kept on a row or in an error
logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry query strings (lookup emails)


class ApiError(Exception):
    """A call the server refused; ``status`` is None for transport failures."""

    def __init__(self, status: int | None, method: str, path: str, message: str):
        self.status, self.method, self.path, self.message = status, method, path, message
        super().__init__(f"{method} {path} -> {status or 'no response'}: {message}")

    @property
    def retriable(self) -> bool:
        return self.status is None or self.status in RETRIABLE_STATUS


@dataclass
class CallMetrics:
    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    limiter_wait_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


class RateLimiter:
    """Token bucket shared by all threads of one client; pauses fully when the server says so."""

    def __init__(self, per_second: float, burst: int):
        self.per_second, self.capacity = per_second, float(burst)
        self.tokens, self.updated = float(burst), time.monotonic()
        self.paused_until = 0.0
        self.lock = threading.Lock()

    def acquire(self) -> float:
        waited = 0.0
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
                self.updated = now
                delay = max(self.paused_until - now, (1 - self.tokens) / self.per_second if self.tokens < 1 else 0)
                if delay <= 0:
                    self.tokens -= 1
                    return waited
            time.sleep(delay)
            waited += delay

    def pause(self, seconds: float) -> None:
        """Pause every thread, for at most MAX_PAUSE_S whatever the server asked."""
        seconds = min(max(seconds, 0.0), MAX_PAUSE_S) if math.isfinite(seconds) else MAX_PAUSE_S
        with self.lock:
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)


def header_number(response: httpx.Response, name: str, default: float) -> float:
    """A numeric header, or ``default`` when it is missing, not a number, or not finite
    ("100/10s", "1e999", "nan"): a server's odd header must not crash or stall a task."""
    try:
        value = float(response.headers.get(name, default))
    except ValueError:
        return default
    return value if math.isfinite(value) and value >= 0 else default


def retry_after_seconds(response: httpx.Response, default: float) -> float:
    return min(header_number(response, "Retry-After", default), MAX_PAUSE_S)


def error_message(response: httpx.Response) -> str:
    """The server's own message, cut to MAX_ERROR_CHARS: it is stored on outbox rows and in reports."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return _cut(response.text)
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body.get("errors") or body
        if isinstance(message, dict):
            message = message.get("message", message)
        return _cut("; ".join(map(str, message)) if isinstance(message, list) else str(message))
    return _cut(str(body))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + f"... ({len(text)} characters)"


class ApiClient:
    """httpx client with pacing and retries; subclasses add the API's own calls."""

    def __init__(self, base_url: str, *, auth: httpx.Auth | None = None, headers: dict[str, str] | None = None,
                 per_second: float = 10.0, burst: int = 10, timeout: float = 30.0, max_attempts: int = 5,
                 max_connections: int = 8):
        self.http = httpx.Client(base_url=checked_base_url(base_url).rstrip("/"), auth=auth, headers=headers,
                                 timeout=timeout,
                                 limits=httpx.Limits(max_connections=max_connections))
        self.limiter = RateLimiter(per_second, burst)
        self.metrics = CallMetrics()
        self.max_attempts = max_attempts
        self._count_lock = threading.Lock()  # calls run on several threads (bounded fan-out)

    def count(self, name: str, amount: float = 1) -> None:
        with self._count_lock:
            setattr(self.metrics, name, getattr(self.metrics, name) + amount)

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        checked_path(self.http.base_url, path)  # raises UnsafeTransport: never retried
        self.count("limiter_wait_s", self.limiter.acquire())
        self.count("calls")
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(None, method, path, type(exc).__name__) from None
        self.observe(response)
        if response.status_code == 429:
            self.count("rate_limited")
            self.limiter.pause(retry_after_seconds(response, 1.0))
        if response.is_error:
            raise ApiError(response.status_code, method, path, error_message(response))
        return response

    def observe(self, response: httpx.Response) -> None:
        """Hook for APIs that report their remaining budget in headers."""

    def request(self, method: str, path: str, *, retry: bool, **kwargs: Any) -> httpx.Response:
        """Send one call; ``retry`` only for calls that are safe to repeat."""
        if not retry:
            return self._send(method, path, **kwargs)

        def count_retry(state: RetryCallState) -> None:
            self.count("retries")
            log.warning("retrying %s %s after %s", method, path, state.outcome.exception())

        for attempt in Retrying(retry=retry_if_exception(lambda e: isinstance(e, ApiError) and e.retriable),
                                wait=wait_random_exponential(multiplier=0.2, max=10),
                                stop=stop_after_attempt(self.max_attempts), before_sleep=count_retry, reraise=True):
            with attempt:
                return self._send(method, path, **kwargs)
        raise AssertionError("unreachable")

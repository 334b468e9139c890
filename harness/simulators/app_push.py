"""Webhooks of the app simulators: every change (a create, update or delete through the API, and a
record written by ``POST /_sim/seed``, the simulators' stand-in for an edit in the app's own admin
screens) is sent to the registered targets, HMAC-SHA256 signed with each target's shared secret as
the app's ``Signing`` says, in the app's ``envelope``.

None of these apps publishes webhook documentation: each app module's ``PUSH`` is an ASSUMPTION,
the same one its built-in profile's ``app.webhooks`` block declares (include/profiles/*.yaml).

Admin routes: ``POST /_sim/webhooks {"url": "http://127.0.0.1:<port>/...", "secret": "..."}``
registers a target on this machine (again: replaces its secret) and answers ``{"targets": [urls]}``;
``GET /_sim/webhooks/deliveries`` lists every delivery (event id, type, url, body, attempts, status).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from fastapi import APIRouter

from harness.simulators.base import ADMIN_PREFIX, error, now_iso
from harness.simulators.webhook_delivery import Delivery

Verb = Literal["created", "updated", "deleted"]


@dataclass(frozen=True)
class Signing:
    """HMAC-SHA256 over the raw body, or over ``{timestamp}.{body}``, in ``header`` after ``prefix``."""

    header: str
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    timestamp: Literal["unix", "iso"] = "unix"
    signed_text: Literal["body", "timestamp.body"] = "body"

    def headers(self, raw: bytes, secret: str) -> dict[str, str]:
        stamp = (str(int(time.time())) if self.timestamp == "unix" else now_iso()) if self.timestamp_header else ""
        text = raw if self.signed_text == "body" else stamp.encode() + b"." + raw
        digest = hmac.new(secret.encode(), text, hashlib.sha256).digest()
        signature = digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()
        stamped = {self.timestamp_header: stamp} if self.timestamp_header else {}
        return {self.header: self.prefix + signature, **stamped}


@dataclass(frozen=True)
class Change:
    """One change of one record: what an envelope is made of."""

    verb: Verb
    collection: str
    noun: str  # the app's name of the record's kind in its event types (member, projectTask, ...)
    record: dict[str, Any]
    record_id: Any

    @property
    def type(self) -> str:
        return f"{self.noun}.{self.verb}"


@dataclass(frozen=True)
class Push:
    """How an app pushes: its signing, its nouns per collection, and the body of one change (``envelope``
    returns the body and the event's id, None when the app sends none)."""

    signing: Signing
    nouns: dict[str, str]
    envelope: Callable[[Change], tuple[dict[str, Any], str | None]]


class AppWebhooks(Delivery):
    """Targets with their secrets; a change of a collection the app pushes becomes one signed event each."""

    thread_name = "app-webhooks"

    def __init__(self, push: Push, **delivery: Any):
        super().__init__(**delivery)
        self.push = push

    def headers(self, url: str, raw: bytes) -> dict[str, str]:
        return self.push.signing.headers(raw, self.targets[url])

    def changed(self, verb: Verb, collection: str, record: dict[str, Any], record_id: Any) -> None:
        noun = self.push.nouns.get(collection)
        if noun is None or not self.targets:
            return
        body, event_id = self.push.envelope(Change(verb, collection, noun, record, record_id))
        self.send(body, {"id": event_id, "type": f"{noun}.{verb}"})

    def router(self) -> APIRouter:
        admin = APIRouter(prefix=ADMIN_PREFIX)

        @admin.post("/webhooks")
        def add_target(body: dict[str, Any]):
            url, secret = str(body.get("url") or ""), body.get("secret")
            if not isinstance(secret, str) or not secret:
                return error(400, {"statusCode": 400, "message": "secret: the shared secret to sign with is required"})
            try:
                self.register(url, secret)
            except ValueError as exc:
                return error(400, {"statusCode": 400, "message": str(exc)})
            return {"targets": list(self.targets)}

        @admin.get("/webhooks/deliveries")
        def deliveries() -> list[dict[str, Any]]:
            return list(self.deliveries)

        return admin


def register_target(sim_url: str, receiver_url: str, secret: str, timeout_s: float = 10.0) -> list[str]:
    """Aim an app simulator's webhooks at a receiver (a test's or a bench's): its targets afterwards.
    ``receiver_url``: e.g. ``http://127.0.0.1:<api-server port>/crm-sync/webhooks/app/<profile>``;
    ``secret``: the extra ``webhook_secret`` of the profile's app connection."""
    answer = httpx.post(f"{sim_url.rstrip('/')}{ADMIN_PREFIX}/webhooks", json={"url": receiver_url, "secret": secret},
                        timeout=timeout_s)
    answer.raise_for_status()
    return answer.json()["targets"]

"""Is this body the app's? HMAC-SHA256 with the app's shared secret, as the profile's
``app.webhooks.signature`` describes it (header, hex or base64, prefix, optional timestamp).

Checked on the raw bytes before anything parses them, compared in constant time
(``hmac.compare_digest``). A timestamp header, when the profile names one, must be within
``tolerance_s`` of now: an old signed body replayed later is refused. Errors say which rule
failed, never the secret, the expected signature or the body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from crm_sync.profile_webhooks import WebhookSignature
from crm_sync.webhooks.inbox import BadEvent, StaleEvent, moment
from crm_sync.webhooks.signature import SignatureError

UNIX_MS_FROM = 10**11  # a unix timestamp this large is in milliseconds (year 5138 in seconds)


def sign(text: bytes, secret: str, encoding: str = "hex") -> str:
    """The signature of ``text`` as the header carries it (without a prefix): what an app computes."""
    digest = hmac.new(secret.encode(), text, hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def signed_text(raw: bytes, rule: WebhookSignature, timestamp: str | None) -> bytes:
    """What the HMAC covers: the raw body, or ``{timestamp}.{body}``."""
    return raw if rule.signed_text == "body" else (timestamp or "").encode() + b"." + raw


def verify(raw: bytes, headers: Mapping[str, str], rule: WebhookSignature, secret: str,
           now: datetime | None = None) -> datetime | None:
    """The time the timestamp header gives (None without one) once ``raw`` is proved the app's;
    SignatureError (forged, altered, unsigned) or StaleEvent otherwise. ``headers``: lower-case names."""
    given = headers.get(rule.header.lower(), "").strip()
    if not given:
        raise SignatureError(f"no {rule.header} header")
    if rule.prefix:
        if not given.startswith(rule.prefix):
            raise SignatureError(f"{rule.header} does not start with {rule.prefix!r}")
        given = given[len(rule.prefix):].strip()
    stamp = None
    if rule.timestamp_header:
        stamp = headers.get(rule.timestamp_header.lower(), "").strip()
        if not stamp:
            raise SignatureError(f"no {rule.timestamp_header} header")
    expected = hmac.new(secret.encode(), signed_text(raw, rule, stamp), hashlib.sha256).digest()
    if not hmac.compare_digest(_decoded(given, rule), expected):
        raise SignatureError(f"{rule.header} does not match the body")
    if stamp is None:
        return None
    sent_at = _timestamp(stamp, rule.timestamp_header or "")
    if abs((now or datetime.now(UTC)) - sent_at) > timedelta(seconds=rule.tolerance_s):
        raise StaleEvent(f"{rule.timestamp_header} is more than {rule.tolerance_s} s from now")
    return sent_at


def _decoded(value: str, rule: WebhookSignature) -> bytes:
    try:
        if rule.encoding == "hex":
            return bytes.fromhex(value)
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise SignatureError(f"{rule.header} is not {rule.encoding}") from None


def _timestamp(value: str, header: str) -> datetime:
    """Unix seconds (or milliseconds), or ISO 8601; a signed but unreadable time is a 401 too."""
    try:
        number = float(value)
    except ValueError:
        try:
            return moment(value)
        except BadEvent:
            raise SignatureError(f"{header} is not unix seconds or an ISO 8601 time") from None
    try:
        return datetime.fromtimestamp(number / 1000 if number >= UNIX_MS_FROM else number, UTC)
    except (OverflowError, OSError, ValueError):
        raise SignatureError(f"{header} is not a time UTC can hold") from None

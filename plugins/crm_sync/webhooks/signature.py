"""Is this body GHL's? Ed25519 ``X-GHL-Signature`` over the raw bytes; the legacy RSA-SHA256
``X-WH-Signature`` only when enabled. Verified before the body is parsed; the keys are loaded
once, when the receiver is built (``check``), so a bad key is a ConfigError, not a failed request.

``webhook_public_key`` may list several keys, comma-separated: while GHL rotates its key, events
signed with either the old or the new one are GHL's."""

from __future__ import annotations

import base64
import binascii
import functools

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from crm_sync.webhooks.settings import SECTION, ConfigError, WebhookSettings


class SignatureError(Exception):
    """The request is not provably GHL's; the message says why, never the key or the body."""


@functools.cache
def _ed25519_keys(keys: str) -> tuple[Ed25519PublicKey, ...]:
    """Every key of a comma-separated list (base64 and PEM hold no comma)."""
    return tuple(_ed25519(key.strip()) for key in keys.split(",") if key.strip())


def _ed25519(key: str) -> Ed25519PublicKey:
    loaded = (serialization.load_pem_public_key(key.encode()) if "BEGIN" in key
              else serialization.load_der_public_key(base64.b64decode(key)))
    if not isinstance(loaded, Ed25519PublicKey):
        raise ValueError("webhook_public_key is not an Ed25519 public key")
    return loaded


@functools.cache
def _rsa(key: str) -> RSAPublicKey:
    loaded = serialization.load_pem_public_key(key.encode())
    if not isinstance(loaded, RSAPublicKey):
        raise ValueError("webhook_rsa_public_key is not an RSA public key")
    return loaded


def check(settings: WebhookSettings) -> None:
    """Load the keys the settings name; ConfigError naming the setting when one is missing or unusable."""
    keys = [("webhook_public_key", settings.public_key, _ed25519_keys,
             "an Ed25519 public key (SPKI base64 or PEM; several: comma-separated)")]
    if settings.legacy_rsa:
        keys.append(("webhook_rsa_public_key", settings.rsa_public_key, _rsa, "an RSA public key (PEM)"))
    for setting, key, load, kind in keys:
        if not key.replace(",", "").strip():
            raise ConfigError(f"[{SECTION}] {setting} is empty: set it to GHL's current key, or unset it for "
                              "the default")
        try:
            load(key)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ConfigError(f"[{SECTION}] {setting} is not {kind}") from None


def _decoded(value: str, header: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{header} is not base64") from None


def verify(raw: bytes, headers: dict[str, str], settings: WebhookSettings) -> str:
    """The scheme that proved ``raw`` is GHL's ("ed25519" or "rsa"); SignatureError otherwise.
    ``headers``: lower-case names."""
    if signature := headers.get("x-ghl-signature"):
        decoded = _decoded(signature, "X-GHL-Signature")
        for key in _ed25519_keys(settings.public_key):
            try:
                key.verify(decoded, raw)
                return "ed25519"
            except InvalidSignature:
                continue
        raise SignatureError("X-GHL-Signature does not match the body")
    if (signature := headers.get("x-wh-signature")) and settings.legacy_rsa:
        try:
            _rsa(settings.rsa_public_key).verify(_decoded(signature, "X-WH-Signature"), raw,
                                                 padding.PKCS1v15(), hashes.SHA256())
            return "rsa"
        except InvalidSignature:
            raise SignatureError("X-WH-Signature does not match the body") from None
    if signature:
        raise SignatureError("X-WH-Signature is the legacy RSA scheme, not enabled (webhook_legacy_rsa)")
    raise SignatureError("no X-GHL-Signature header")

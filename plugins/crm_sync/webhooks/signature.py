"""Is this body GHL's? Ed25519 ``X-GHL-Signature`` over the raw bytes; the legacy RSA-SHA256
``X-WH-Signature`` only when enabled. Verified before the body is parsed."""

from __future__ import annotations

import base64
import binascii
import functools

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from crm_sync.webhooks.settings import WebhookSettings


class SignatureError(Exception):
    """The request is not provably GHL's; the message says why, never the key or the body."""


@functools.cache
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


def _decoded(value: str, header: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{header} is not base64") from None


def verify(raw: bytes, headers: dict[str, str], settings: WebhookSettings) -> str:
    """The scheme that proved ``raw`` is GHL's ("ed25519" or "rsa"); SignatureError otherwise.
    ``headers``: lower-case names."""
    if signature := headers.get("x-ghl-signature"):
        try:
            _ed25519(settings.public_key).verify(_decoded(signature, "X-GHL-Signature"), raw)
            return "ed25519"
        except InvalidSignature:
            raise SignatureError("X-GHL-Signature does not match the body") from None
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

"""TEST-ONLY Ed25519 key pair with which the GHL simulator signs its webhooks.

GHL signs webhooks with its own private key and publishes the public key (shared/ref/ghl/NOTES.md).
The simulator cannot use GHL's key, so it signs with this pair, and tests configure the receiver
with ``TEST_PUBLIC_KEY_SPKI_B64`` instead of GHL's published key. This private key is public
knowledge by being in this file: never trust it outside tests and the local demo.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# TEST ONLY: generated for this repository; not GHL's key, not a secret.
TEST_PRIVATE_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINpLuQVNmAV0wdT5fJJJzf6DqaENZd6pvhtghQ47VPR+
-----END PRIVATE KEY-----
"""
# The matching public key, SPKI DER in base64: the form in which GHL publishes its own.
TEST_PUBLIC_KEY_SPKI_B64 = "MCowBQYDK2VwAyEAXwckhp9z8CCUjRg2aQ0BGq+o9uXFLiAwU7xo0DNVeGE="


def private_key() -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(TEST_PRIVATE_KEY_PEM, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def public_key() -> Ed25519PublicKey:
    key = serialization.load_der_public_key(base64.b64decode(TEST_PUBLIC_KEY_SPKI_B64))
    assert isinstance(key, Ed25519PublicKey)
    return key


def sign(raw_body: bytes, key: Ed25519PrivateKey | None = None) -> str:
    """The ``X-GHL-Signature`` value: base64 of the Ed25519 signature of the raw body."""
    return base64.b64encode((key or private_key()).sign(raw_body)).decode()

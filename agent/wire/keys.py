"""Agent wire: Ed25519 public keys as they travel, the raw 32 bytes every batch is checked with.

The agent sends its public key at enrolment and signs batches with the private half
(``agent.daemon.identity`` keeps that file); the collector stores the raw public key and
verifies with it. Both sides encode, decode and name keys here, so they agree byte for byte.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "PUBLIC_KEY_SIZE",
    "IdentityError",
    "fingerprint",
    "public_key_bytes",
    "public_key_from_bytes",
]

PUBLIC_KEY_SIZE = 32


class IdentityError(Exception):
    """A key cannot be created, read or used; the message names the file and the fix."""


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key, the form sent at enrolment and stored by the collector."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_bytes(data: bytes) -> Ed25519PublicKey:
    if not isinstance(data, bytes | bytearray) or len(data) != PUBLIC_KEY_SIZE:
        size = f"{len(data)} bytes" if isinstance(data, bytes | bytearray) else type(data).__name__
        raise IdentityError(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} raw bytes, got {size}")
    try:
        return Ed25519PublicKey.from_public_bytes(bytes(data))
    except ValueError as exc:
        raise IdentityError(f"not a valid Ed25519 public key: {exc}") from None


def fingerprint(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """16 hex digits of the public key's SHA-256, for logs and for comparing by eye."""
    return hashlib.sha256(public_key_bytes(key)).hexdigest()[:16]

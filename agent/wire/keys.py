"""Agent wire: Ed25519 public keys as they travel, the raw 32 bytes every batch is checked with.

The agent sends its public key at enrolment and signs batches with the private half
(``agent.daemon.identity`` keeps that file); the collector stores the raw public key and
verifies with it. Both sides encode, decode and name keys here, so they agree byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "PUBLIC_KEY_SIZE",
    "IdentityError",
    "fingerprint",
    "public_key_bytes",
    "public_key_from_bytes",
    "read_private_key",
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


def read_private_key(path: Path, noun: str, limit: int, *, nofollow: bool) -> Ed25519PrivateKey:
    """The Ed25519 key in the PEM file ``path`` (``noun`` names it in messages): a regular file
    no other user may read, of at most ``limit`` bytes. FileNotFoundError if there is none;
    IdentityError for anything else wrong. The agent's and the collector's keys both load here.
    """
    # O_NONBLOCK: a FIFO in the key's place fails the regular-file check instead of hanging;
    # O_NOFOLLOW: the key is never read through a link someone planted.
    what = f"the {noun}"
    flags = os.O_RDONLY | os.O_NONBLOCK | (os.O_NOFOLLOW if nofollow else 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise IdentityError(f"cannot read {what} {path}: {exc}") from exc
    try:
        st = os.fstat(fd)  # the file opened, not the name: no race with a rename
        if not stat.S_ISREG(st.st_mode):
            raise IdentityError(f"{what} {path} is not a regular file")
        if st.st_mode & 0o077:
            raise IdentityError(
                f"permissions {stat.S_IMODE(st.st_mode):04o} for {what} {path} are too open: "
                f"other users must not read it. Fix with: chmod 600 {path}"
            )
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise IdentityError(f"cannot read {what} {path}: {exc}") from exc
    finally:
        os.close(fd)
    if len(data) > limit:
        article = "an" if noun[:1] in "aeiou" else "a"
        raise IdentityError(f"{path} is not {article} {noun}: over {limit} bytes")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # TypeError is how cryptography reports an encrypted key loaded without a password.
        raise IdentityError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise IdentityError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key

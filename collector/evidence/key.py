"""Collector evidence: the collector's own Ed25519 key, which signs evidence bundles.

Created at the first start of ``netsonde-collector serve`` (or the first ``bundle``) in the
collector's state, beside a SQLite database by default (``collector.config.default_key_file``).
Written 0600 from its first byte, never through a symbolic link planted in its place, and
refused on load if other users could read it, as ssh does. Only the public half leaves:
``GET /api/v1/collector-key`` and the dashboard show it, and every bundle carries it, so
that a reader can check that a bundle came from the collector whose key they were given.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.wire.keys import IdentityError, fingerprint, public_key_bytes, read_private_key

__all__ = ["IdentityError", "key_fingerprint", "load_or_create_key", "public_key_text"]

_MAX_KEY_FILE = 64 * 1024  # a PKCS8 Ed25519 PEM is 119 bytes; anything huge is not our key


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The public half as people and tools compare it: base64 of the raw 32 bytes."""
    return base64.b64encode(public_key_bytes(key)).decode("ascii")


def key_fingerprint(key: Ed25519PrivateKey) -> str:
    """16 hex digits of the public key's SHA-256, to compare by eye or read over a phone."""
    return fingerprint(key)


def load_or_create_key(path: Path | str) -> Ed25519PrivateKey:
    """The key at ``path``, created (and its directory, 0700) if there is none yet.
    IdentityError if it cannot be read, is not a private Ed25519 key, or others could
    read it."""
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        return _load(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_new(path, pem)
    except FileExistsError:
        # Another process (a second collector on the same state) created it meanwhile.
        return _load(path)
    except OSError as exc:
        raise IdentityError(f"cannot write the collector key {path}: {exc}") from exc
    return key


def _write_new(path: Path, data: bytes) -> None:
    """Writes ``data`` to a new ``path``, 0600, whole or not at all; FileExistsError if the
    name exists (link() never replaces, where rename() would)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)  # exactly 0600, whatever the umask took away
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _load(path: Path) -> Ed25519PrivateKey:
    """FileNotFoundError if there is no key yet; IdentityError for anything else wrong."""
    return read_private_key(path, "collector key", _MAX_KEY_FILE, nofollow=True)

"""Agent daemon: the agent's Ed25519 identity key file, created at enrolment in the state directory.

The key signs every batch the agent uploads (``agent.wire.batch``), so it is the agent's identity
towards the collector: it is written with mode 0600 from its first byte, and loading refuses a
key file that other users could read, as ssh does. Only the raw 32-byte public key leaves the
machine, at enrolment.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.daemon.files import write_private
from agent.wire.keys import IdentityError, read_private_key

__all__ = ["create_key", "load_key"]

_MAX_KEY_FILE = 64 * 1024  # a PKCS8 Ed25519 PEM is 119 bytes; anything huge is not our key


def create_key(path: Path, *, overwrite: bool = False) -> Ed25519PrivateKey:
    """Generate a key and write it as unencrypted PKCS8 PEM, atomically, mode 0600.

    Refuses to replace an existing key unless ``overwrite``: losing it means re-enrolling,
    and the collector would then see a new agent.
    """
    path = Path(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        # umask can only remove bits, so a new parent is at most 0700.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise IdentityError(f"cannot create the key's directory {path.parent}: {exc}") from exc
    if not overwrite and os.path.lexists(path):
        raise IdentityError(f"{path} already exists; refusing to replace the agent's key")
    try:
        write_private(path, pem, replace=overwrite)
    except FileExistsError as exc:
        raise IdentityError(f"{path} already exists; refusing to replace the agent's key") from exc
    except OSError as exc:
        raise IdentityError(f"cannot write the agent key {path}: {exc}") from exc
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    path = Path(path)
    try:
        return read_private_key(path, "agent key", _MAX_KEY_FILE, nofollow=False)
    except FileNotFoundError:
        raise IdentityError(f"no agent key at {path}: enrol the agent first") from None

"""Agent daemon: the agent's Ed25519 identity key file, created at enrolment in the state directory.

The key signs every batch the agent uploads (``agent.wire.batch``), so it is the agent's identity
towards the collector: it is written with mode 0600 from its first byte, and loading refuses a
key file that other users could read, as ssh does. Only the raw 32-byte public key leaves the
machine, at enrolment.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.daemon.files import write_private
from agent.wire.keys import IdentityError

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
        # O_NONBLOCK so a FIFO in the key's place fails the regular-file check below
        # instead of hanging the daemon; it changes nothing for a regular file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise IdentityError(f"no agent key at {path}: enrol the agent first") from None
    except OSError as exc:
        raise IdentityError(f"cannot read the agent key {path}: {exc}") from exc
    try:
        # fstat on the open file, not stat on the name: the mode checked is the file read.
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IdentityError(f"the agent key {path} is not a regular file")
        if st.st_mode & 0o077:
            raise IdentityError(
                f"permissions {stat.S_IMODE(st.st_mode):04o} for the agent key {path} are too "
                f"open: it must not be accessible by other users. Fix with: chmod 600 {path}"
            )
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise IdentityError(f"cannot read the agent key {path}: {exc}") from exc
    finally:
        os.close(fd)
    if len(data) > _MAX_KEY_FILE:
        raise IdentityError(f"{path} is not an agent key: over {_MAX_KEY_FILE} bytes")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # TypeError is how cryptography reports an encrypted key loaded without a password.
        raise IdentityError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise IdentityError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key

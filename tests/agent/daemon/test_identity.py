"""The agent key: created 0600 from the start, never clobbered, refused if others can read it."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.daemon.identity import create_key, load_key
from agent.wire.keys import IdentityError, fingerprint, public_key_bytes, public_key_from_bytes


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def write_private(path: Path, data: bytes, perms: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(perms)
    return path


def test_created_key_is_0600_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "state" / "agent.key"
    key = create_key(path)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_key_bytes(load_key(path)) == public_key_bytes(key)
    assert os.listdir(path.parent) == ["agent.key"]  # no temporary file left behind


@pytest.mark.usefixtures("umask_000")
def test_umask_000_does_not_loosen_the_modes(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "agent.key"
    create_key(path)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_refuses_to_overwrite_an_existing_key(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    create_key(path)
    before = path.read_bytes()
    with pytest.raises(IdentityError, match="already exists"):
        create_key(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["agent.key"]


def test_refuses_to_overwrite_even_a_dangling_symlink(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(IdentityError, match="already exists"):
        create_key(path)
    assert not (tmp_path / "elsewhere").exists()


def test_overwrite_replaces_the_key_still_0600(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    first = create_key(path)
    path.chmod(0o644)  # the replacement must not inherit the old file's mode
    second = create_key(path, overwrite=True)
    assert public_key_bytes(first) != public_key_bytes(second)
    assert public_key_bytes(load_key(path)) == public_key_bytes(second)
    assert mode(path) == 0o600


def test_load_missing_key_says_so(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    with pytest.raises(IdentityError, match=f"no agent key at {re.escape(str(path))}"):
        load_key(path)


@pytest.mark.parametrize("perms", [0o644, 0o640, 0o604, 0o660, 0o666, 0o601])
def test_load_refuses_loose_permissions_naming_the_fix(tmp_path: Path, perms: int) -> None:
    path = tmp_path / "agent.key"
    create_key(path)
    path.chmod(perms)
    with pytest.raises(IdentityError) as info:
        load_key(path)
    message = str(info.value)
    assert f"{perms:04o}" in message
    assert f"chmod 600 {path}" in message


def test_load_accepts_stricter_than_0600(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    key = create_key(path)
    path.chmod(0o400)
    assert public_key_bytes(load_key(path)) == public_key_bytes(key)


@pytest.mark.parametrize(
    "data",
    [b"", b"not a key at all\n", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
)
def test_load_refuses_what_is_not_a_key(tmp_path: Path, data: bytes) -> None:
    path = write_private(tmp_path / "agent.key", data)
    with pytest.raises(IdentityError, match="not an unencrypted PEM private key"):
        load_key(path)


def test_load_refuses_an_rsa_key(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = write_private(tmp_path / "agent.key", pem)
    with pytest.raises(IdentityError, match="RSAPrivateKey, not an Ed25519 key"):
        load_key(path)


def test_load_refuses_an_encrypted_key(tmp_path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    path = write_private(tmp_path / "agent.key", pem)
    with pytest.raises(IdentityError, match="not an unencrypted PEM private key"):
        load_key(path)


def test_load_refuses_a_directory_and_a_huge_file(tmp_path: Path) -> None:
    directory = tmp_path / "agent.key"
    directory.mkdir(mode=0o700)
    with pytest.raises(IdentityError, match="not a regular file"):
        load_key(directory)
    huge = write_private(tmp_path / "huge.key", b"A" * 100_000)
    with pytest.raises(IdentityError, match="not an agent key"):
        load_key(huge)


def test_public_key_round_trip_verifies_signatures() -> None:
    key = Ed25519PrivateKey.generate()
    raw = public_key_bytes(key)
    assert len(raw) == 32
    public = public_key_from_bytes(raw)
    public.verify(key.sign(b"message"), b"message")
    assert public_key_bytes(public) == raw
    assert fingerprint(key) == fingerprint(public)
    assert len(fingerprint(key)) == 16
    assert int(fingerprint(key), 16) >= 0
    assert fingerprint(key) != fingerprint(Ed25519PrivateKey.generate())


@pytest.mark.parametrize("data", [b"", b"\x01" * 31, b"\x01" * 33, b"\x01" * 64])
def test_public_key_from_bytes_refuses_wrong_lengths(data: bytes) -> None:
    with pytest.raises(IdentityError, match="32 raw bytes"):
        public_key_from_bytes(data)


def test_public_key_from_bytes_refuses_non_bytes() -> None:
    with pytest.raises(IdentityError, match="32 raw bytes"):
        public_key_from_bytes("a" * 32)  # type: ignore[arg-type]

"""The collector's own key: created at the first start of ``serve`` with mode 0600, the same
key after a restart, refused when others can read it or it is not a key, and its public
half served at ``GET /api/v1/collector-key``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.api.paths import COLLECTOR_KEY_PATH
from agent.wire.keys import IdentityError
from collector.cli import build_parser, settings_from_args
from collector.config import Settings, default_key_file, make_settings
from collector.evidence.cli import check_key
from collector.evidence.key import key_fingerprint, load_or_create_key, public_key_text
from tests.collector.app_client import running


def test_the_key_is_created_0600_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "collector-key.pem"
    first = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o077 == 0
    again = load_or_create_key(path)
    assert public_key_text(again) == public_key_text(first)


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "collector-key.pem"
    load_or_create_key(path)
    path.chmod(0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_or_create_key(path)


@pytest.mark.parametrize("content", [b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\n"])
def test_a_file_that_is_not_a_key_is_refused_and_kept(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "collector-key.pem"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(IdentityError, match="not an unencrypted PEM private key"):
        load_or_create_key(path)
    assert path.read_bytes() == content


def test_a_link_in_the_keys_place_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.pem"
    load_or_create_key(target)
    link = tmp_path / "collector-key.pem"
    link.symlink_to(target)
    with pytest.raises(IdentityError, match="cannot read the collector key"):
        load_or_create_key(link)
    dangling = tmp_path / "dangling.pem"
    dangling.symlink_to(tmp_path / "nowhere.pem")
    with pytest.raises(IdentityError):
        load_or_create_key(dangling)
    assert not (tmp_path / "nowhere.pem").exists()


def test_the_default_key_file_is_with_the_collectors_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_key_file(f"sqlite:///{tmp_path}/c.db") == f"{tmp_path}/collector-key.pem"
    assert default_key_file("postgresql://u@h/db") == (
        f"{tmp_path}/state/netsonde-collector/collector-key.pem"
    )
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_key_file("postgresql://u@h/db") == (
        f"{tmp_path}/.local/state/netsonde-collector/collector-key.pem"
    )
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/netsonde-collector")
    assert (
        default_key_file("postgresql://u@h/db") == "/var/lib/netsonde-collector/collector-key.pem"
    )
    settings = make_settings(db=f"sqlite:///{tmp_path}/c.db")
    assert settings.key_file == f"{tmp_path}/collector-key.pem"


def test_serve_creates_the_key_at_first_start_and_keeps_it(tmp_path: Path) -> None:
    args = build_parser().parse_args(["serve", "--db", f"sqlite:///{tmp_path}/c.db"])
    settings = settings_from_args(args)
    assert check_key(settings) is None
    path = tmp_path / "collector-key.pem"
    first = path.read_bytes()
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert check_key(settings) is None  # a restart
    assert path.read_bytes() == first
    path.chmod(0o640)
    assert check_key(settings) == 1


@pytest.mark.asyncio
async def test_the_public_key_is_served(tmp_path: Path) -> None:
    path = tmp_path / "collector-key.pem"
    key = load_or_create_key(path)
    settings = Settings(db_url=f"sqlite:///{tmp_path}/c.db", key_file=str(path))
    async with running(settings) as client:
        response = await client.get(COLLECTOR_KEY_PATH)
        assert response.status == 200
        assert await response.json() == {
            "algorithm": "ed25519",
            "public_key": public_key_text(key),
            "fingerprint": key_fingerprint(key),
        }
        assert (await client.get(COLLECTOR_KEY_PATH, params={"x": "1"})).status == 400

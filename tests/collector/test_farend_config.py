"""The far end's settings, tokens and files: ``serve``'s ``--farend-*`` options and the
``farend`` command, each problem a one-line error; tokens that name their agent and refuse
tampering; one secret and one certificate made once, private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from collector.cli import build_parser, main, settings_from_args
from collector.config import ConfigError
from collector.farend.config import DEFAULT_TLS_PORT, default_state_dir, make_farend_config
from collector.farend.files import SECRET_FILE, TLS_FILE, load_secret, tls_context
from collector.farend.tokens import TokenError, TokenSigner


def serve_settings(tmp_path: Path, *options: str):  # type: ignore[no-untyped-def]
    argv = ["serve", "--db", f"sqlite:///{tmp_path}/c.db", *options]
    return settings_from_args(build_parser().parse_args(argv))


def test_serve_runs_a_far_end_by_default_on_its_own_host(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path, "--listen", "192.0.2.7:8080")
    farend = settings.farend
    assert farend is not None
    assert (farend.host, farend.tls_port, farend.remote) == ("192.0.2.7", DEFAULT_TLS_PORT, False)
    assert farend.state_dir == tmp_path  # beside the SQLite database
    assert serve_settings(tmp_path, "--no-farend").farend is None


def test_serve_takes_the_far_ends_options(tmp_path: Path) -> None:
    settings = serve_settings(
        tmp_path,
        *("--farend-host", "0.0.0.0", "--farend-tls-port", "443", "--farend-http-port", "80"),
        *("--farend-advertise", "farend.example.org", "--farend-daily-bytes", "1000000"),
        *("--farend-target", "X.com", "--farend-target", "x.com", "--farend-dir", str(tmp_path)),
    )
    farend = settings.farend
    assert farend is not None
    assert (farend.host, farend.tls_port, farend.http_port) == ("0.0.0.0", 443, 80)
    assert (farend.advertise, farend.daily_bytes, farend.targets) == (
        "farend.example.org",
        1_000_000,
        ("https://x.com/",),
    )
    assert farend.categories == ("GRP", "COMT", "ANON")
    chosen = serve_settings(tmp_path, "--farend-category", "mmed", "--farend-category", "GRP")
    assert chosen.farend is not None
    assert chosen.farend.categories == ("MMED", "GRP")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--farend-tls-port", "8000", "--farend-http-port", "8000"), "must differ"),
        (("--farend-udp-port", "70000"), "--farend-udp-port 70000"),
        (("--farend-remote",), "--farend-remote needs --farend-advertise"),
        (("--farend-dir", "/nonexistent/dir"), "--farend-dir"),
        (("--farend-advertise", "not a name!"), "--farend-advertise"),
        (("--farend-per-agent", "0"), "--farend-per-agent 0"),
        (("--farend-target", "gopher://x.org/"), "--farend-target"),
        (("--farend-category", "not a code"), "--farend-category"),
    ],
)
def test_far_end_options_that_cannot_work_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: tuple[str, ...], message: str
) -> None:
    assert main(["serve", "--db", f"sqlite:///{tmp_path}/c.db", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("netsonde-collector: error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_the_farend_command_refuses_a_bad_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["farend", "--dir", "/nonexistent/dir"]) == 2
    assert "--farend-dir" in capsys.readouterr().err


def test_the_state_directory_is_systemds_else_the_databases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert default_state_dir(f"sqlite:///{tmp_path}/x.db") == tmp_path
    assert default_state_dir("postgresql://db/netsonde") == Path()
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/netsonde-collector:/other")
    assert default_state_dir(f"sqlite:///{tmp_path}/x.db") == Path("/var/lib/netsonde-collector")


def test_remote_far_end_needs_where_it_is(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        make_farend_config(host="127.0.0.1", state_dir=tmp_path, remote=True)
    config = make_farend_config(
        host="127.0.0.1", state_dir=tmp_path, remote=True, advertise="192.0.2.9"
    )
    assert config.advertise == "192.0.2.9"


def test_the_secret_and_certificate_are_made_once_and_private(tmp_path: Path) -> None:
    secret = load_secret(tmp_path)
    assert len(secret) == 32
    assert load_secret(tmp_path) == secret
    tls_context(tmp_path)
    first = (tmp_path / TLS_FILE).read_bytes()
    tls_context(tmp_path)
    assert (tmp_path / TLS_FILE).read_bytes() == first
    for name in (SECRET_FILE, TLS_FILE):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


def test_tokens_carry_their_agent_and_refuse_tampering() -> None:
    signer = TokenSigner(b"0123456789abcdef0123456789abcdef", ttl=60)
    token, expires = signer.issue("agent-1", now=1000.0)
    assert expires == 1_060_000
    assert signer.verify(token, now=1059.0) == "agent-1"
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token, now=1061.0)
    head, _, mac = token.rpartition(".")
    forged_agent = head.replace(head.split(".")[1], "YWdlbnQtMg") + "." + mac
    for bad in (forged_agent, token + "x", "ns1.a.b.c", "é" * 10, "x" * 600):
        with pytest.raises(TokenError):
            signer.verify(bad, now=1000.0)

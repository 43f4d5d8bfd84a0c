"""Unit tests: the collector's settings validation (the control cache and request parsing
are in tests/collector/web/test_control_cache.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector.cli import main
from collector.config import ConfigError, Settings, make_settings, parse_listen
from tests import REPO

# -- settings -------------------------------------------------------------------


def test_defaults_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = make_settings()
    # The signing key beside the default SQLite database; Settings() built in code has none.
    assert settings == Settings(key_file="collector-key.pem")
    assert settings.db_url == "sqlite:///netsonde.db"
    assert settings.control_ttl == 300
    assert settings.url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.51.100.10:8080", ("198.51.100.10", 8080)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("[::1]:8443", ("::1", 8443)),
        ("localhost:65535", ("localhost", 65535)),
        # A name by the one rule of agent.model.hostnames: underscores too, as looked up.
        ("collector_1.lan:80", ("collector_1.lan", 80)),
        ("Collector.LAN.:80", ("collector.lan", 80)),
    ],
)
def test_listen_accepts(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8080", "expected HOST:PORT"),
        (":8080", "host is missing"),
        ("127.0.0.1:", "port must be"),
        ("127.0.0.1:0", "port must be"),
        ("127.0.0.1:70000", "port must be"),
        ("127.0.0.1:http", "port must be"),
        ("::1:8080", "expected HOST:PORT"),
        ("[::1]8080", "expected [IPV6]:PORT"),
        ("[nothost]:80", "not an IP address"),
        ("bad_host!:80", "not an IP address or host name"),
        ("-collector:80", "not an IP address or host name"),
    ],
)
def test_listen_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="--listen") as info:
        parse_listen(text)
    assert message in str(info.value)


def test_db_urls(tmp_path: Path) -> None:
    assert make_settings(db=f"sqlite:///{tmp_path}/n.db").db_url == f"sqlite:///{tmp_path}/n.db"
    assert make_settings(db="postgresql://netsonde@db.example/netsonde").db_url.startswith(
        "postgresql://"
    )
    problems = {
        "mysql://x/y": "unsupported database",
        "netsonde.db": "unsupported database",
        f"sqlite:///{tmp_path}/missing/n.db": "does not exist",
        "sqlite://host/n.db": "three slashes",
        "sqlite:///": "no database file",
        "postgresql:///netsonde": "needs a host",
    }
    for url, message in problems.items():
        with pytest.raises(ConfigError, match=message):
            make_settings(db=url)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to any directory")
def test_db_directory_must_be_writable(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            make_settings(db=f"sqlite:///{tmp_path}/n.db")
    finally:
        tmp_path.chmod(0o755)


def test_other_options(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    settings = make_settings(
        ca_file=str(ca),
        resolvers=["198.51.100.8", " 2001:db8::53", "198.51.100.8"],
        benign_sni="Example.COM.",
        control_ttl=0,
        timeout=2.5,
        ingest_rate=0.5,
        ingest_burst=3,
    )
    assert (settings.ingest_rate, settings.ingest_burst) == (0.5, 3)
    assert settings.ca_file == str(ca)
    assert settings.resolvers == ("198.51.100.8", "2001:db8::53")
    assert settings.benign_sni == "example.com"
    assert (settings.control_ttl, settings.timeout) == (0, 2.5)
    problems = [
        ({"ca_file": str(tmp_path / "nope.pem")}, "--ca-file"),
        ({"resolvers": ["dns.google"]}, "--resolver"),
        ({"benign_sni": "localhost"}, "--benign-sni"),
        ({"benign_sni": "bad name.com"}, "--benign-sni"),
        ({"control_ttl": -1.0}, "--control-ttl"),
        ({"control_ttl": float("nan")}, "--control-ttl"),
        ({"timeout": 0.0}, "--timeout"),
        ({"timeout": float("inf")}, "--timeout"),
        ({"ingest_rate": 0.0}, "--ingest-rate"),
        ({"ingest_burst": 0}, "--ingest-burst"),
        ({"allowed_networks": ["192.0.2.0/24", "lab"]}, "--allow-network 'lab'"),
        ({"control_rate": 0.0}, "--control-rate"),
        ({"control_burst": 0}, "--control-burst"),
        ({"control_deadline": float("inf")}, "--control-deadline"),
    ]
    for kwargs, option in problems:
        with pytest.raises(ConfigError, match=option):
            make_settings(**kwargs)  # type: ignore[arg-type]


def test_control_limits() -> None:
    defaults = make_settings()
    assert defaults.allowed_networks == ()  # public addresses only
    assert (defaults.control_rate, defaults.control_burst) == (10.0, 60)
    assert defaults.control_deadline == 30.0
    settings = make_settings(
        allowed_networks=["198.51.100.0/24", "2001:db8::/32", "198.51.100.7/24", "10.1.2.3"],
        control_rate=2.5,
        control_burst=4,
        control_deadline=9.0,
    )
    assert [str(n) for n in settings.allowed_networks] == [
        "198.51.100.0/24",
        "2001:db8::/32",
        "10.1.2.3/32",
    ]
    assert (settings.control_rate, settings.control_burst, settings.control_deadline) == (
        2.5,
        4,
        9.0,
    )


def test_serve_takes_the_control_limits(tmp_path: Path) -> None:
    from collector.cli import build_parser, settings_from_args

    argv = ["serve", "--db", f"sqlite:///{tmp_path}/c.db", "--allow-network", "192.0.2.0/24"]
    argv += ["--allow-network", "2001:db8::/32", "--control-rate", "3", "--control-burst", "7"]
    settings = settings_from_args(build_parser().parse_args([*argv, "--control-deadline", "12"]))
    assert [str(n) for n in settings.allowed_networks] == ["192.0.2.0/24", "2001:db8::/32"]
    assert (settings.control_rate, settings.control_burst, settings.control_deadline) == (
        3.0,
        7,
        12.0,
    )


def test_cli_config_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--listen", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("netsonde-collector: error: --listen 'nowhere'")
    assert len(err.strip().splitlines()) == 1


def test_cli_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--control-ttl", "soon"])
    assert info.value.code == 2


def test_help_does_not_import_aiohttp() -> None:
    code = (
        "import sys; from collector.cli import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'aiohttp' not in sys.modules and 'agent.site' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "--control-ttl" in done.stdout

"""Unit tests: the agent daemon's configuration file, its defaults and every refusal.

Each refusal must name the file and the dotted key, because that message is all a volunteer
sees in ``journalctl`` when the agent will not start.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from agent.daemon.config import (
    AgentConfig,
    CollectorConfig,
    ConfigError,
    LimitsConfig,
    ProbeSettings,
    ScheduleConfig,
    TestListConfig,
    load_config,
    parse_config,
    parse_duration,
    parse_size,
)
from agent.site import ProbeConfig
from tests import REPO

EXAMPLE = REPO / "deploy" / "agent.toml"
SOURCE = "/etc/netsonde/agent.toml"
MINIMAL: dict[str, Any] = {"collector": {"urls": ["https://collector.example.org"]}}


def _with(table: str, key: str, value: object) -> dict[str, Any]:
    raw: dict[str, Any] = {"collector": dict(MINIMAL["collector"])}
    if table:
        raw.setdefault(table, {})[key] = value
    else:
        raw[key] = value
    return raw


def test_example_file_parses_to_the_defaults() -> None:
    config = load_config(EXAMPLE)
    expected = AgentConfig(
        collector=CollectorConfig(urls=("https://collector.example.org",)), source=str(EXAMPLE)
    )
    assert config == expected
    assert config.state_dir == Path("/var/lib/netsonde")
    assert config.testlist == TestListConfig(files=(), from_collector=True, refresh=12 * 3600)
    assert config.schedule == ScheduleConfig(
        interval=6 * 3600, jitter=0.1, connectivity_check=300, upload=60
    )
    assert config.probe.concurrency == 8
    assert config.probe.timeout == 10
    assert config.probe.benign_sni == "example.com"
    assert config.limits == LimitsConfig(spool_size=50_000_000, daily_bandwidth=None)


def test_example_file_examples_are_valid_when_uncommented() -> None:
    # Every "#key = value" line must itself be accepted, or the example misleads. Paths are
    # skipped: the example's files do not exist here.
    table, checked = "", 0
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("["):
            table = line.strip("[]")
        elif line.startswith("#") and " = " in line and not line.startswith("# "):
            value = tomllib.loads(line[1:])
            key = next(iter(value))
            if key not in ("ca_file", "files", "fingerprints"):
                parse_config(_with(table, key, value[key]), SOURCE)
                checked += 1
    assert checked >= 15


def test_full_file(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text("url,category_code\nhttps://x.com/,NEWS\n")
    (tmp_path / "fp.csv").write_text("name,scope,location_found,pattern_type,pattern\n")
    (tmp_path / "ca.pem").write_text("")
    path = tmp_path / "agent.toml"
    path.write_text(
        'state_dir = "state"\nca_file = "ca.pem"\n'
        '[collector]\nurls = ["https://a.example/", "http://b.example:8080/x"]\n'
        'proxy = "http://proxy:3128"\n'
        '[testlist]\nfiles = ["list.csv"]\nfrom_collector = false\nrefresh = "1d"\n'
        '[schedule]\ninterval = "1h30m"\njitter = "25%"\nconnectivity_check = 90\n'
        'upload = "30s"\n'
        '[probe]\nconcurrency = 2\ntimeout = 3.5\ndns_timeout = "500ms"\nmax_endpoints = 2\n'
        'resolvers = ["1.1.1.1", "2606:4700:4700:0::1111", "1.1.1.1"]\n'
        'benign_sni = "Example.NET."\nfingerprints = ["fp.csv"]\n'
        '[limits]\nspool_size = "1GiB"\ndaily_bandwidth = "200MB"\n'
    )
    config = load_config(path)
    assert config.state_dir == tmp_path / "state"
    assert config.ca_file == tmp_path / "ca.pem"
    assert config.collector == CollectorConfig(
        urls=("https://a.example", "http://b.example:8080/x"), proxy="http://proxy:3128"
    )
    assert config.testlist == TestListConfig((tmp_path / "list.csv",), False, 86400)
    assert config.schedule == ScheduleConfig(5400, 0.25, 90, 30)
    assert config.probe == ProbeSettings(
        concurrency=2,
        timeout=3.5,
        dns_timeout=0.5,
        max_endpoints=2,
        resolvers=("1.1.1.1", "2606:4700:4700::1111"),
        benign_sni="example.net",
        fingerprints=(tmp_path / "fp.csv",),
    )
    assert config.limits == LimitsConfig(spool_size=2**30, daily_bandwidth=200_000_000)

    probe = config.probe_config()
    assert probe == ProbeConfig(
        resolvers=("1.1.1.1", "2606:4700:4700::1111"),
        benign_name="example.net",
        ca_file=str(tmp_path / "ca.pem"),
        timeout=3.5,
        dns_timeout=0.5,
        fingerprints=None,
        max_endpoints=2,
    )


def test_probe_config_carries_loaded_fingerprints() -> None:
    from agent.fingerprints import FingerprintSet

    fingerprints = FingerprintSet([])
    probe = parse_config(MINIMAL, SOURCE).probe_config(fingerprints)
    assert probe.fingerprints is fingerprints
    assert probe.ca_file is None
    assert probe.benign_name == "example.com"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400), ("1h30m", 5400),
     ("250ms", 0.25), (" 2 H ", 7200), (45, 45), (1.5, 1.5)],
)  # fmt: skip
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "6", "6x", "h", "-5m", "1.h", 0, -1, True, [], "inf"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match=r"duration|more than zero"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [("50MB", 50_000_000), ("50mb", 50_000_000), ("1GiB", 2**30), ("1.5KiB", 1536),
     ("512", 512), ("10 kB", 10_000), ("7B", 7), (0, 0), (4096, 4096)],
)  # fmt: skip
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "5XB", "-5MB", "5 M B", -1, 1.5, False])
def test_bad_sizes(text: object) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


_S = SOURCE
BAD: list[tuple[dict[str, Any], str]] = [
    ({"collector": {"urls": ["ftp://x"]}},
     f"{_S}: collector.urls[0]: 'ftp://x' is not an http(s) URL"),
    ({"collector": {"urls": ["https://ok.example", "https://bad:port"]}},
     f"{_S}: collector.urls[1]: 'https://bad:port' is not an http(s) URL"),
    ({"collector": {"urls": "https://x.example"}},
     f"{_S}: collector.urls: expected an array, got a string"),
    ({"collector": {"urls": [42]}}, f"{_S}: collector.urls[0]: expected a string, got an integer"),
    ({}, f"{_S}: collector.urls: at least one collector URL is required"),
    ({"collector": {"urls": []}}, f"{_S}: collector.urls: at least one collector URL is required"),
    ({"collector": "https://x.example"}, f"{_S}: collector: expected a table"),
    (_with("collector", "proxy", "socks5://p:1080"), f"{_S}: collector.proxy: 'socks5://p:1080'"),
    (_with("testlist", "from_collector", False), f"{_S}: testlist: no test list source"),
    (_with("testlist", "from_collector", "yes"),
     f"{_S}: testlist.from_collector: expected a boolean, got a string"),
    (_with("schedule", "interval", -60), f"{_S}: schedule.interval: -60: must be more than zero"),
    (_with("schedule", "interval", "-1h"), f"{_S}: schedule.interval: '-1h' is not a duration"),
    (_with("schedule", "upload", "soon"), f"{_S}: schedule.upload: 'soon' is not a duration"),
    (_with("schedule", "jitter", "150%"), f"{_S}: schedule.jitter: '150%' is not a percentage"),
    (_with("schedule", "jitter", 0.1), f"{_S}: schedule.jitter: 0.1 is not a percentage"),
    (_with("schedule", "intervall", "6h"),
     f"{_S}: schedule.intervall: unknown key (did you mean schedule.interval?)"),
    (_with("", "interval", "6h"), f"{_S}: interval: unknown key (did you mean schedule.interval?)"),
    (_with("", "colector", {}), f"{_S}: colector: unknown key (did you mean collector?)"),
    (_with("probe", "zzz", 1), f"{_S}: probe.zzz: unknown key"),
    (_with("limits", "spool_size", "50 megs"), f"{_S}: limits.spool_size: '50 megs' is not a size"),
    (_with("limits", "spool_size", "10kB"), f"{_S}: limits.spool_size: must be at least 1MB"),
    (_with("limits", "daily_bandwidth", -1), f"{_S}: limits.daily_bandwidth: -1 is not a size"),
    (_with("probe", "resolvers", ["1.1.1.1", "8.8.8"]),
     f"{_S}: probe.resolvers[1]: '8.8.8' is not an IP address"),
    (_with("probe", "concurrency", 0), f"{_S}: probe.concurrency: must be from 1 to 1024, not 0"),
    (_with("probe", "concurrency", "8"), f"{_S}: probe.concurrency: expected an integer, got a s"),
    (_with("probe", "concurrency", True), f"{_S}: probe.concurrency: expected an integer, got a b"),
    (_with("probe", "max_endpoints", 99), f"{_S}: probe.max_endpoints: must be from 1 to 16"),
    (_with("probe", "timeout", 0), f"{_S}: probe.timeout: 0: must be more than zero"),
    (_with("probe", "benign_sni", "localhost"), f"{_S}: probe.benign_sni: 'localhost' is not a"),
    (_with("probe", "benign_sni", "bad name.com"), f"{_S}: probe.benign_sni: 'bad name.com'"),
    (_with("probe", "benign_sni", "-a.example"), f"{_S}: probe.benign_sni: '-a.example' is not"),
    (_with("probe", "fingerprints", ["/nonexistent/fp.csv"]),
     f"{_S}: probe.fingerprints[0]: '/nonexistent/fp.csv' is not a readable file"),
    (_with("testlist", "files", ["/nonexistent/list.csv"]),
     f"{_S}: testlist.files[0]: '/nonexistent/list.csv' is not a readable file"),
    (_with("", "ca_file", "/nonexistent/ca.pem"), f"{_S}: ca_file: '/nonexistent/ca.pem' is not"),
    (_with("", "state_dir", ""), f"{_S}: state_dir: must not be empty"),
    (_with("", "state_dir", 5), f"{_S}: state_dir: expected a string, got an integer"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "host"), [("my_host.example", "my_host.example"), ("Bücher.DE.", "xn--bcher-kva.de")]
)
def test_benign_sni_follows_the_host_name_rule(name: str, host: str) -> None:
    assert parse_config(_with("probe", "benign_sni", name), SOURCE).probe.benign_sni == host


@pytest.mark.parametrize(("raw", "message"), BAD)
def test_refusals_name_file_and_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, SOURCE)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read configuration"):
        load_config(tmp_path / "missing.toml")
    path = tmp_path / "agent.toml"
    path.write_text("[collector\nurls = 1\n")
    with pytest.raises(ConfigError, match=r"agent\.toml: not valid TOML: .*line 1"):
        load_config(path)

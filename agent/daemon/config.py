"""Agent daemon: the configuration file (``/etc/netsonde/agent.toml``), parsed and validated.

``deploy/agent.toml`` is the commented example; its values are the defaults below. Every problem
raises :class:`ConfigError` with one line naming the file and the dotted key, so the daemon can
refuse a bad file at start instead of failing hours later. Unknown keys are refused too: a typo
such as ``intervall`` would otherwise silently leave the default in force. Standard library only
at import time, so a configuration error is reported fast on a Raspberry Pi.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from agent.daemon.config_values import (
    ConfigError,
    Table,
    bounded,
    parse_duration,
    parse_size,
    type_name,
)
from agent.model.addresses import IPNetwork, parse_networks
from agent.model.hostnames import normalize_host

if TYPE_CHECKING:
    from agent.fingerprints import FingerprintSet
    from agent.site import ProbeConfig

__all__ = ["DEFAULT_PATH", "AgentConfig", "ConfigError", "load_config", "parse_config"]

DEFAULT_PATH = Path("/etc/netsonde/agent.toml")
DEFAULT_STATE_DIR = Path("/var/lib/netsonde")  # the systemd unit's StateDirectory=
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")

# table -> its keys; "" is the top level. The single source of the accepted key names.
_SCHEMA: dict[str, tuple[str, ...]] = {
    "": ("state_dir", "ca_file"),
    "collector": ("urls", "proxy"),
    "testlist": ("files", "from_collector", "refresh", "allow_networks"),
    "schedule": ("interval", "jitter", "connectivity_check", "upload", "goodput_every"),
    "probe": (
        "concurrency", "timeout", "dns_timeout", "max_endpoints", "resolvers", "benign_sni",
        "fingerprints",
    ),
    "limits": ("spool_size", "daily_bandwidth", "goodput_bytes"),
    "throttle": ("enabled", "interval", "categories", "max_targets", "from_collector"),
    "trace": ("enabled", "interval", "max_targets", "max_ttl"),
}  # fmt: skip


@dataclass(frozen=True)
class CollectorConfig:
    urls: tuple[str, ...]  # tried in order; uploads fail over to the next
    proxy: str | None = None  # HTTP proxy for uploads only; probes never use it


@dataclass(frozen=True)
class TestListConfig:
    __test__ = False  # not a pytest test class, despite the name
    files: tuple[Path, ...] = ()  # local Citizen Lab CSVs
    from_collector: bool = True  # also GET /api/v1/testlist
    refresh: float = 12 * 3600.0
    # Non-public networks the collector's list may still send the agent into (the censor
    # lab, LAN research): agent.model.addresses.may_reach's ``allowed``. None by default.
    allow_networks: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True)
class ScheduleConfig:
    interval: float = 6 * 3600.0  # seconds between runs of the test list
    jitter: float = 0.10  # fraction of the interval, so agents on one network do not align
    connectivity_check: float = 300.0  # what detects shutdowns
    upload: float = 60.0
    # Every this many connectivity checks, one also measures a benign goodput through the
    # far end (agent.daemon.goodput), for the collector's degraded periods; 0: never.
    goodput_every: int = 6


@dataclass(frozen=True)
class ProbeSettings:
    concurrency: int = 8
    timeout: float = 10.0
    dns_timeout: float = 5.0  # glibc's own per-query default
    max_endpoints: int = 4
    resolvers: tuple[str, ...] = ()
    benign_sni: str = "example.com"
    fingerprints: tuple[Path, ...] = ()  # loaded by the daemon; none: the collector's


@dataclass(frozen=True)
class LimitsConfig:
    spool_size: int = 50 * 10**6
    daily_bandwidth: int | None = None  # bytes per day; None is unlimited
    goodput_bytes: int = 128 * 1024  # the most one goodput sample downloads


@dataclass(frozen=True)
class ThrottleSettings:
    """The throttle test's subset (agent.daemon.throttle): the local lists' rows in these
    Citizen Lab categories (social networking, messaging, circumvention) and, with
    ``from_collector``, the URLs the collector flags; ``max_targets`` a run, every ``interval``."""

    enabled: bool = True
    interval: float = 24 * 3600.0
    categories: tuple[str, ...] = ("GRP", "COMT", "ANON")
    max_targets: int = 10
    from_collector: bool = True


@dataclass(frozen=True)
class TraceSettings:
    """The trace (agent.daemon.trace): each newly blocked (target, verdict) is traced once per
    ``interval``, at most ``max_targets`` after a measure run, up to ``max_ttl``."""

    enabled: bool = True
    interval: float = 24 * 3600.0
    max_targets: int = 8
    max_ttl: int = 16


@dataclass(frozen=True)
class AgentConfig:
    collector: CollectorConfig
    source: str = str(DEFAULT_PATH)
    state_dir: Path = DEFAULT_STATE_DIR
    ca_file: Path | None = None  # trusted for the sites and the collector
    testlist: TestListConfig = field(default_factory=TestListConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    trace: TraceSettings = field(default_factory=TraceSettings)

    @property
    def collector_fingerprints(self) -> bool:
        """Whether the daemon measures with the collector's fingerprints
        (``agent.daemon.fingerprints``): only when no local files are configured."""
        return not self.probe.fingerprints

    @property
    def refreshes_from_collector(self) -> bool:
        """Whether the test-list job runs: for the collector's test list or fingerprints."""
        return self.testlist.from_collector or self.collector_fingerprints

    def probe_config(self, fingerprints: FingerprintSet | None = None) -> ProbeConfig:
        """The probing settings, so ``agent.site`` never reads the file itself."""
        from agent.site import ProbeConfig

        return ProbeConfig(
            resolvers=self.probe.resolvers,
            benign_name=self.probe.benign_sni,
            ca_file=None if self.ca_file is None else str(self.ca_file),
            timeout=self.probe.timeout,
            dns_timeout=self.probe.dns_timeout,
            fingerprints=fingerprints,
            max_endpoints=self.probe.max_endpoints,
        )


def _table(source: str, raw: Mapping[str, object], name: str) -> Table:
    data = raw.get(name, {}) if name else raw
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {name}: expected a table ([{name}]), got {type_name(data)}")
    known = _SCHEMA[name] + (tuple(k for k in _SCHEMA if k) if not name else ())
    table = Table(source, name, data)
    for key in data:
        if key not in known:
            table.fail(key, f"unknown key{_suggest(name, key, known)}")
    return table


def _suggest(name: str, key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f" (did you mean {Table('', name, {}).key(close[0])}?)"
    # Right key, wrong table: `interval` at the top level instead of under [schedule].
    elsewhere = [f"{t}.{key}" if t else key for t, keys in _SCHEMA.items() if key in keys]
    return f" (did you mean {elsewhere[0]}?)" if elsewhere else ""


def load_config(path: Path) -> AgentConfig:
    """Read and validate one TOML file; relative paths in it are relative to its directory."""
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, str(path))


def parse_config(raw: Mapping[str, object], source: str) -> AgentConfig:
    """Validate an already-parsed file; ``source`` names it in messages and anchors its paths."""
    base = Path(source).parent
    top = _table(source, raw, "")
    tables = {name: _table(source, raw, name) for name in _SCHEMA if name}
    collector = _collector(tables["collector"])
    testlist = _testlist(tables["testlist"], base)
    if not testlist.files and not testlist.from_collector:
        raise ConfigError(
            f"{source}: testlist: no test list source; set testlist.files or "
            "testlist.from_collector = true"
        )
    ca_file = top.typed("ca_file", str, "")
    state_dir = top.typed("state_dir", str, str(DEFAULT_STATE_DIR))
    if not state_dir.strip():
        top.fail("state_dir", "must not be empty")
    return AgentConfig(
        collector=collector,
        source=source,
        state_dir=base / state_dir,
        ca_file=_readable(top, "ca_file", base / ca_file) if ca_file else None,
        testlist=testlist,
        schedule=_schedule(tables["schedule"]),
        probe=_probe(tables["probe"], base),
        limits=_limits(tables["limits"]),
        throttle=_throttle(tables["throttle"]),
        trace=_trace(tables["trace"]),
    )


def _http_url(table: Table, key: str | int, text: str) -> str:
    try:
        parts = urlsplit(text.strip())
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError on a bad port, which is the check
    except ValueError:
        ok = False
    if not ok:
        table.fail(key, f"{text!r} is not an http(s) URL")
    return text.strip().rstrip("/")


def _collector(table: Table) -> CollectorConfig:
    array, urls = table.strings("urls")
    if not urls:
        table.fail("urls", "at least one collector URL is required (results are uploaded there)")
    checked = [_http_url(array, i, url) for i, url in enumerate(urls)]
    proxy = table.typed("proxy", str, "")
    return CollectorConfig(
        urls=tuple(dict.fromkeys(checked)),
        proxy=_http_url(table, "proxy", proxy) if proxy else None,
    )


def _readable(table: Table, key: str | int, path: Path) -> Path:
    # Checked now, not at the first run hours later; the files' contents are read by their users.
    if not path.is_file() or not os.access(path, os.R_OK):
        table.fail(key, f"{str(path)!r} is not a readable file")
    return path


def _files(table: Table, key: str, base: Path) -> tuple[Path, ...]:
    array, names = table.strings(key)
    return tuple(_readable(array, i, base / name) for i, name in enumerate(names))


def _testlist(table: Table, base: Path) -> TestListConfig:
    array, networks = table.strings("allow_networks")
    allowed: list[IPNetwork] = []
    for i, text in enumerate(networks):
        try:
            allowed.extend(parse_networks([text]))
        except ValueError as exc:
            array.fail(i, str(exc))
    return TestListConfig(
        files=_files(table, "files", base),
        from_collector=table.typed("from_collector", bool, True),
        refresh=table.convert("refresh", parse_duration, TestListConfig.refresh),
        allow_networks=tuple(dict.fromkeys(allowed)),
    )


def _jitter(value: object) -> float:
    # Only "N%": a bare 0.1 could mean 10% or 0.1%, and guessing wrong skews every schedule.
    match = _PERCENT.fullmatch(value.strip()) if isinstance(value, str) else None
    percent = float(match.group(1)) if match else math.nan
    if not 0 <= percent <= 100:  # NaN fails too
        raise ValueError(f'{value!r} is not a percentage from "0%" to "100%" of the interval')
    return percent / 100


def _schedule(table: Table) -> ScheduleConfig:
    d = ScheduleConfig()
    return ScheduleConfig(
        interval=table.convert("interval", parse_duration, d.interval),
        jitter=table.convert("jitter", _jitter, d.jitter),
        connectivity_check=table.convert(
            "connectivity_check", parse_duration, d.connectivity_check
        ),
        upload=table.convert("upload", parse_duration, d.upload),
        goodput_every=_goodput_every(table, d.goodput_every),
    )


def _goodput_every(table: Table, default: int) -> int:
    value = table.typed("goodput_every", int, default)
    if not 0 <= value <= 10_000:
        table.fail("goodput_every", f"must be from 0 (never) to 10000 checks, not {value}")
    return value


def _probe(table: Table, base: Path) -> ProbeSettings:
    d = ProbeSettings()
    array, resolvers = table.strings("resolvers")
    checked = []
    for i, resolver in enumerate(resolvers):
        try:
            checked.append(str(ipaddress.ip_address(resolver.strip())))
        except ValueError:
            array.fail(i, f"{resolver!r} is not an IP address")
    raw_sni = table.typed("benign_sni", str, d.benign_sni)
    sni = normalize_host(raw_sni)
    # Fully qualified too: a single label (``localhost``) is no public site to blend in with.
    if sni is None or "." not in sni:
        shown = raw_sni.strip().lower().rstrip(".")
        table.fail("benign_sni", f"{shown!r} is not a fully qualified host name")
    return ProbeSettings(
        concurrency=bounded(table, "concurrency", d.concurrency, 1024),
        timeout=table.convert("timeout", parse_duration, d.timeout),
        dns_timeout=table.convert("dns_timeout", parse_duration, d.dns_timeout),
        max_endpoints=bounded(table, "max_endpoints", d.max_endpoints, 16),
        resolvers=tuple(dict.fromkeys(checked)),
        benign_sni=sni,
        fingerprints=_files(table, "fingerprints", base),
    )


def _limits(table: Table) -> LimitsConfig:
    spool = table.convert("spool_size", parse_size, LimitsConfig.spool_size)
    # So small a spool would evict results during any short outage: most likely "kB" for "MB".
    if spool < 10**6:
        table.fail("spool_size", f"must be at least 1MB, not {spool} bytes")
    budget = table.convert("daily_bandwidth", parse_size, 0)
    goodput = table.convert("goodput_bytes", parse_size, LimitsConfig.goodput_bytes)
    # The far end refuses more than MAX_TRANSFER; too few bytes time nothing but a handshake.
    if not 16 * 1024 <= goodput <= 4 * 1024 * 1024:
        table.fail("goodput_bytes", f"must be from 16KiB to 4MiB, not {goodput} bytes")
    return LimitsConfig(spool_size=spool, daily_bandwidth=budget or None, goodput_bytes=goodput)


def _throttle(table: Table) -> ThrottleSettings:
    d = ThrottleSettings()
    categories = d.categories
    if "categories" in table.data:
        array, codes = table.strings("categories")
        for i, code in enumerate(codes):
            if not code.strip().isalnum():
                array.fail(i, f"{code!r} is not a Citizen Lab category code (e.g. GRP)")
        categories = tuple(dict.fromkeys(code.strip().upper() for code in codes))
    return ThrottleSettings(
        enabled=table.typed("enabled", bool, d.enabled),
        interval=table.convert("interval", parse_duration, d.interval),
        categories=categories,
        max_targets=bounded(table, "max_targets", d.max_targets, 1000),
        from_collector=table.typed("from_collector", bool, d.from_collector),
    )


def _trace(table: Table) -> TraceSettings:
    d = TraceSettings()
    return TraceSettings(
        enabled=table.typed("enabled", bool, d.enabled),
        interval=table.convert("interval", parse_duration, d.interval),
        max_targets=bounded(table, "max_targets", d.max_targets, 100),
        max_ttl=bounded(table, "max_ttl", d.max_ttl, 32),  # agent.cli.trace.MAX_TTL
    )

"""Collector configuration: the settings of one collector process, parsed and validated.

Pure and light (the standard library, and host names by ``agent.model.hostnames``, which
is standard library only), so ``netsonde-collector --help`` and a configuration error stay
fast and never touch aiohttp or the probes. Every problem raises :class:`ConfigError` with a
one-line message naming the option.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from agent.model.addresses import IPNetwork, parse_networks
from agent.model.hostnames import normalize_host
from collector.thresholds import Thresholds

if TYPE_CHECKING:
    from collector.farend.config import FarendConfig

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_DB = "sqlite:///netsonde.db"
DEFAULT_BENIGN_SNI = "example.com"
DEFAULT_CONTROL_TTL = 300.0
DEFAULT_TIMEOUT = 5.0
DEFAULT_CACHE_ENTRIES = 10_000
DEFAULT_CONCURRENT_CONTROLS = 64
# Control requests are a URL and at most MAX_ADDRESSES IPs; anything near this is abuse.
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024
MAX_ADDRESSES = 16
# A signed batch is at most 4 MiB (agent.wire.batch.MAX_BATCH_BYTES, not imported: that pulls in
# msgpack and cryptography); the margin only covers framing, it does not raise the limit.
DEFAULT_MAX_BATCH_REQUEST_BYTES = 4 * 1024 * 1024 + 64 * 1024
# Per agent: an uploader drains a backlog at a few batches a second; more is a bug or abuse.
DEFAULT_INGEST_RATE = 10.0  # batches per second
DEFAULT_INGEST_BURST = 20
# How long a connection may idle, or take over a request head; above the agents' own 15 s
# (aiohttp's client) and short of what leaves many trickling sockets open for long.
DEFAULT_IDLE_TIMEOUT = 30.0
# How long a request body may take before it must average 1 KiB/s (collector.web.timeouts).
DEFAULT_BODY_TIMEOUT = 30.0
# Per agent, on /control. A daemon runs 8 site tests at once, each asking one control, a
# few a second at most; a CLI run starts its first 16 at once. Cache hits count too.
DEFAULT_CONTROL_RATE = 10.0  # requests per second
DEFAULT_CONTROL_BURST = 60
# One control measurement, all of it: DNS (2 s) and, per endpoint, at most four steps of
# --timeout each (a connect and handshake or request, then the swap's). A stuck one ends here.
DEFAULT_CONTROL_DEADLINE = 30.0
# The collector's own signing key (collector.evidence.key), by default beside a SQLite
# database, else in systemd's StateDirectory=, else in the user's state directory.
KEY_FILE_NAME = "collector-key.pem"


class ConfigError(ValueError):
    """A setting that cannot work; the message names the option and what is wrong."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    db_url: str = DEFAULT_DB
    ca_file: str | None = None
    resolvers: tuple[str, ...] = ()
    benign_sni: str = DEFAULT_BENIGN_SNI
    control_ttl: float = DEFAULT_CONTROL_TTL
    timeout: float = DEFAULT_TIMEOUT
    cache_entries: int = DEFAULT_CACHE_ENTRIES
    concurrent_controls: int = DEFAULT_CONCURRENT_CONTROLS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_batch_request_bytes: int = DEFAULT_MAX_BATCH_REQUEST_BYTES
    ingest_rate: float = DEFAULT_INGEST_RATE
    ingest_burst: int = DEFAULT_INGEST_BURST
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    # The control: where it may connect besides public addresses (agent.model.addresses),
    # how often each agent may ask, how long one measurement may take.
    allowed_networks: tuple[IPNetwork, ...] = ()
    control_rate: float = DEFAULT_CONTROL_RATE
    control_burst: int = DEFAULT_CONTROL_BURST
    control_deadline: float = DEFAULT_CONTROL_DEADLINE
    resolv_conf: str = "/etc/resolv.conf"  # the control's system resolver
    # Enrichment (collector.enrich) and the served test list (collector.testlist).
    geoip: tuple[str, ...] = ()
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    testlist: str | None = None
    fingerprints: tuple[str, ...] = ()  # OONI CSVs served at /api/v1/fingerprints
    # The key that signs evidence bundles (collector.evidence.key), created at first start;
    # None (Settings built in code, as tests do): a key for this process only, never saved.
    key_file: str | None = None
    # When stored verdicts and offline checks make an incident (collector.incidents).
    incidents: Thresholds = field(default_factory=Thresholds)
    # The far end it runs or hands out tokens for (collector.farend); None: no far end.
    farend: FarendConfig | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``; the host must be an IP address or a host name."""
    raw = text.strip()
    if raw.startswith("["):
        host, sep, port_text = raw[1:].partition("]:")
        if not sep:
            raise ConfigError(f"--listen {text!r}: expected [IPV6]:PORT")
    else:
        host, sep, port_text = raw.rpartition(":")
        if not sep or ":" in host:
            raise ConfigError(f"--listen {text!r}: expected HOST:PORT (IPv6 as [ADDR]:PORT)")
    if not host:
        raise ConfigError(f"--listen {text!r}: the host is missing")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"--listen {text!r}: the port must be a number from 1 to 65535")
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host)), int(port_text)
    # A name by the one rule (agent.model.hostnames), in the form it is looked up by.
    name = None if raw.startswith("[") else normalize_host(host)
    if name is None:
        raise ConfigError(f"--listen {text!r}: {host!r} is not an IP address or host name")
    return name, int(port_text)


def check_db_url(url: str) -> str:
    """``sqlite:///path`` (whose directory must be writable) or ``postgresql://...``."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"--db {url!r}: not a URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        if parts.netloc:
            raise ConfigError(
                f"--db {url!r}: use sqlite:///relative/path or sqlite:////absolute/path "
                "(three slashes, no host)"
            )
        path = parts.path[1:]
        if not path:
            raise ConfigError(f"--db {url!r}: no database file after sqlite:///")
        parent = Path(path).parent
        if not parent.is_dir():
            raise ConfigError(f"--db {url!r}: directory {str(parent)!r} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"--db {url!r}: directory {str(parent)!r} is not writable")
        return url
    if scheme.split("+", 1)[0] in ("postgresql", "postgres"):  # also postgresql+psycopg
        if not parts.hostname and "host=" not in parts.query:
            raise ConfigError(f"--db {url!r}: a PostgreSQL URL needs a host")
        return url
    raise ConfigError(
        f"--db {url!r}: unsupported database; use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def default_key_file(db_url: str) -> str:
    """Where the collector keeps its signing key unless told: beside a SQLite database,
    else in systemd's StateDirectory= ($STATE_DIRECTORY), else the user's state directory
    ($XDG_STATE_HOME or ~/.local/state, then netsonde-collector/)."""
    parts = urlsplit(db_url)
    if parts.scheme.lower() == "sqlite" and parts.path[1:]:
        return str(Path(parts.path[1:]).parent / KEY_FILE_NAME)
    if state := os.environ.get("STATE_DIRECTORY", "").split(":")[0]:
        return str(Path(state) / KEY_FILE_NAME)
    home = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return str(Path(home) / "netsonde-collector" / KEY_FILE_NAME)


def _check_ca_file(path: str | None) -> str | None:
    if path is None:
        return None
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigError(f"--ca-file {path!r}: not a readable file")
    return path


def _check_resolvers(resolvers: Sequence[str]) -> tuple[str, ...]:
    checked = []
    for resolver in resolvers:
        try:
            checked.append(str(ipaddress.ip_address(resolver.strip())))
        except ValueError:
            raise ConfigError(f"--resolver {resolver!r}: not an IP address") from None
    return tuple(dict.fromkeys(checked))


def _positive(option: str, value: float, *, allow_zero: bool = False) -> float:
    # NaN fails both comparisons, so it is refused too.
    if not (value >= 0 if allow_zero else value > 0) or value == float("inf"):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ConfigError(f"{option} {value!r}: must be a finite number, {bound}")
    return value


def _check_trusted_proxies(
    cidrs: Sequence[str],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    checked = []
    for cidr in cidrs:
        try:
            checked.append(ipaddress.ip_network(cidr.strip()))
        except ValueError as exc:  # also host bits set, e.g. 10.0.0.1/8: a likely typo
            raise ConfigError(f"--trusted-proxy {cidr!r}: not an IP network: {exc}") from None
    return tuple(dict.fromkeys(checked))


def _check_allowed(cidrs: Sequence[str]) -> tuple[IPNetwork, ...]:
    try:
        return tuple(dict.fromkeys(parse_networks(cidrs)))
    except ValueError as exc:
        raise ConfigError(f"--allow-network {exc}") from None


def _check_geoip(paths: Sequence[str]) -> tuple[str, ...]:
    if not paths:
        return ()
    # Imported here: only a collector that enriches pays for the reader (and --help never).
    from collector.enrich import Enricher, EnrichError

    try:
        Enricher.open(paths).close()
    except EnrichError as exc:
        raise ConfigError(f"--geoip {exc}") from None
    return tuple(dict.fromkeys(paths))


def _check_testlist(path: str | None) -> str | None:
    if path is None:
        return None
    # Imported here: parsing uses the agent's own CSV reader, which --help must not load.
    from pathlib import Path

    from collector.testlist import TestListError, load_test_list

    try:
        load_test_list(Path(path))
    except TestListError as exc:
        raise ConfigError(f"--testlist {exc}") from None
    return path


def _check_fingerprints(paths: Sequence[str]) -> tuple[str, ...]:
    if not paths:
        return ()
    # Imported here: the agent's fingerprint loader, which --help must not load.
    from collector.fingerprints import FingerprintsError, load_served

    try:
        load_served(paths)
    except FingerprintsError as exc:
        raise ConfigError(f"--fingerprints {exc}") from None
    return tuple(dict.fromkeys(paths))


def make_settings(
    *,
    listen: str = DEFAULT_LISTEN,
    db: str = DEFAULT_DB,
    ca_file: str | None = None,
    resolvers: Sequence[str] = (),
    benign_sni: str = DEFAULT_BENIGN_SNI,
    control_ttl: float = DEFAULT_CONTROL_TTL,
    timeout: float = DEFAULT_TIMEOUT,
    geoip: Sequence[str] = (),
    trusted_proxies: Sequence[str] = (),
    testlist: str | None = None,
    fingerprints: Sequence[str] = (),
    ingest_rate: float = DEFAULT_INGEST_RATE,
    ingest_burst: int = DEFAULT_INGEST_BURST,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    allowed_networks: Sequence[str] = (),
    control_rate: float = DEFAULT_CONTROL_RATE,
    control_burst: int = DEFAULT_CONTROL_BURST,
    control_deadline: float = DEFAULT_CONTROL_DEADLINE,
    key_file: str | None = None,
    incidents: Thresholds | None = None,
) -> Settings:
    """Validate the command-line values and build :class:`Settings`, or raise ConfigError."""
    host, port = parse_listen(listen)
    benign = normalize_host(benign_sni)
    if benign is None or "." not in benign:
        raise ConfigError(f"--benign-sni {benign_sni!r}: not a fully qualified host name")
    return Settings(
        host=host,
        port=port,
        db_url=check_db_url(db),
        ca_file=_check_ca_file(ca_file),
        resolvers=_check_resolvers(resolvers),
        benign_sni=benign,
        control_ttl=_positive("--control-ttl", control_ttl, allow_zero=True),
        timeout=_positive("--timeout", timeout),
        geoip=_check_geoip(geoip),
        trusted_proxies=_check_trusted_proxies(trusted_proxies),
        testlist=_check_testlist(testlist),
        fingerprints=_check_fingerprints(fingerprints),
        ingest_rate=_positive("--ingest-rate", ingest_rate),
        ingest_burst=int(_positive("--ingest-burst", ingest_burst)),
        idle_timeout=_positive("--idle-timeout", idle_timeout),
        body_timeout=_positive("--body-timeout", body_timeout),
        allowed_networks=_check_allowed(allowed_networks),
        control_rate=_positive("--control-rate", control_rate),
        control_burst=int(_positive("--control-burst", control_burst)),
        control_deadline=_positive("--control-deadline", control_deadline),
        key_file=key_file or default_key_file(db),
        incidents=incidents or Thresholds(),
    )

"""Collector far end: its settings, parsed and validated.

Standard library only (host names by ``agent.model.hostnames``), like ``collector.config``,
so ``--help`` and a configuration error stay fast. Every problem raises
:class:`collector.config.ConfigError` naming the option.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agent.model.hostnames import normalize_host
from agent.model.measurement import Target, TargetError
from collector.config import ConfigError

__all__ = [
    "DEFAULT_CATEGORIES",
    "DEFAULT_DAILY_BYTES",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_PER_AGENT",
    "DEFAULT_TLS_PORT",
    "DEFAULT_TRANSFERS",
    "DEFAULT_UDP_PORT",
    "FarendConfig",
    "default_state_dir",
    "make_farend_config",
]

# Unprivileged, so a collector running as its own user can open them; a censor that keys on
# port 443 or 80 only needs the far end there (README: "The far end").
DEFAULT_TLS_PORT = 8443
DEFAULT_HTTP_PORT = 8880
DEFAULT_UDP_PORT = 8443
# One throttle test moves about 4 MB; the daemon runs a handful a day.
DEFAULT_DAILY_BYTES = 256 * 2**20
DEFAULT_TRANSFERS = 64
DEFAULT_PER_AGENT = 4
DEFAULT_TOKEN_TTL = 600.0
MAX_TARGETS = 100
DEFAULT_CATEGORIES = ("GRP", "COMT", "ANON")


@dataclass(frozen=True)
class FarendConfig:
    host: str  # where it listens
    state_dir: Path  # its secret and certificate (collector.farend.files)
    tls_port: int = DEFAULT_TLS_PORT  # 0: any free port (tests)
    http_port: int = DEFAULT_HTTP_PORT
    udp_port: int = DEFAULT_UDP_PORT
    advertise: str | None = None  # what agents are told; None: the name they reached the API by
    remote: bool = False  # it runs elsewhere (``netsonde-collector farend``): tokens only
    daily_bytes: int = DEFAULT_DAILY_BYTES
    max_transfers: int = DEFAULT_TRANSFERS
    per_agent: int = DEFAULT_PER_AGENT
    token_ttl: float = DEFAULT_TOKEN_TTL
    # What the daemons should test for throttling: these URLs, and the served test list's
    # rows in these Citizen Lab categories (social networking, messaging, circumvention).
    targets: tuple[str, ...] = ()
    categories: tuple[str, ...] = DEFAULT_CATEGORIES


def default_state_dir(db_url: str | None = None) -> Path:
    """systemd's ``$STATE_DIRECTORY``, else the SQLite database's directory, else here."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state)
    if db_url and urlsplit(db_url).scheme.lower() == "sqlite":
        return Path(urlsplit(db_url).path[1:]).parent
    return Path()


def _host(option: str, text: str) -> str:
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(text.strip("[]")))
    name = normalize_host(text)
    if name is None:
        raise ConfigError(f"{option} {text!r}: not an IP address or host name")
    return name


def _target(text: str) -> str:
    try:
        return Target.parse(text).url
    except TargetError as exc:
        raise ConfigError(f"--farend-target {exc}") from None


def _categories(codes: Sequence[str]) -> tuple[str, ...]:
    checked = tuple(dict.fromkeys(code.strip().upper() for code in codes))
    bad = [code for code in checked if not code.isalnum() or len(code) > 16]
    if bad:
        raise ConfigError(f"--farend-category {bad[0]!r}: not a Citizen Lab category code")
    return checked


def _port(option: str, value: int) -> int:
    if not 0 <= value < 65536:
        raise ConfigError(f"{option} {value}: a port is 1 to 65535 (0: any free port)")
    return value


def _count(option: str, value: int) -> int:
    if value < 1:
        raise ConfigError(f"{option} {value}: must be at least 1")
    return value


def _state_dir(path: Path) -> Path:
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"far-end directory {str(path)!r} (--farend-dir): not writable")
    return path


def make_farend_config(
    *,
    host: str,
    state_dir: Path,
    tls_port: int = DEFAULT_TLS_PORT,
    http_port: int = DEFAULT_HTTP_PORT,
    udp_port: int = DEFAULT_UDP_PORT,
    advertise: str | None = None,
    remote: bool = False,
    daily_bytes: int = DEFAULT_DAILY_BYTES,
    max_transfers: int = DEFAULT_TRANSFERS,
    per_agent: int = DEFAULT_PER_AGENT,
    targets: Sequence[str] = (),
    categories: Sequence[str] = DEFAULT_CATEGORIES,
) -> FarendConfig:
    ports = [_port(f"--farend-{n}-port", p) for n, p in (("tls", tls_port), ("http", http_port))]
    if ports[0] == ports[1] != 0:
        raise ConfigError("--farend-tls-port and --farend-http-port must differ")
    if remote and advertise is None:
        raise ConfigError("--farend-remote needs --farend-advertise: where agents find it")
    if len(targets) > MAX_TARGETS:
        raise ConfigError(f"--farend-target: at most {MAX_TARGETS} names")
    return FarendConfig(
        host=_host("--farend-host", host),
        state_dir=_state_dir(state_dir),
        tls_port=ports[0],
        http_port=ports[1],
        udp_port=_port("--farend-udp-port", udp_port),
        advertise=None if advertise is None else _host("--farend-advertise", advertise),
        remote=remote,
        daily_bytes=_count("--farend-daily-bytes", daily_bytes),
        max_transfers=_count("--farend-transfers", max_transfers),
        per_agent=_count("--farend-per-agent", per_agent),
        targets=tuple(dict.fromkeys(_target(t) for t in targets)),
        categories=_categories(categories),
    )

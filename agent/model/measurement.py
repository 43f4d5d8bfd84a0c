"""Agent model: the measurement, shared by the site test, the verdict and the wire.

Plain frozen dataclasses: a target, what one vantage point saw of it, the
verdict, and the whole site measurement. Kept apart from ``agent.site`` so the
pure ``agent.verdict`` and ``agent.wire`` depend on data, never on I/O.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from agent.model.hostnames import normalize_host
from agent.model.observations import (
    DNSObservation,
    EndpointObservation,
    SystemResolution,
    ThrottleObservation,
)
from agent.model.protocols import ProtocolObservation
from agent.model.trace import TraceObservation

SCHEME_PORTS = {"https": 443, "http": 80}
# RFC 3986's unreserved and sub-delimiter characters, ":" and "@", and "%" so that what is
# already percent-encoded stays as it is; the query may also hold "/" and "?".
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


class TargetError(ValueError):
    """A target that is not a URL or a host name; the message says what was wrong."""


def _host(raw: str) -> str | None:
    """The host in the ASCII form that goes into DNS, SNI and Host, or None if invalid: an IP
    literal as Python writes it, else a name by ``agent.model.hostnames``' rule."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(raw.rstrip(".").lower()))
    # A URL's host with spaces around it is no host, though the rule would strip them.
    return normalize_host(raw) if raw == raw.strip() else None


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, text: str) -> Target:
        """An http(s) URL, or a bare host name (tested as https://name/)."""
        raw = text.strip()
        if not raw:
            raise TargetError("empty target")
        if "://" not in raw:
            if "/" in raw or " " in raw:
                raise TargetError(f"{text!r} is neither a URL nor a host name")
            raw = f"https://{raw}/"
        try:
            parts = urlsplit(raw)
            port = parts.port
        except ValueError as exc:
            raise TargetError(f"{text!r} is not a valid URL: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in SCHEME_PORTS:
            raise TargetError(f"{text!r}: only http and https URLs can be tested")
        host = _host(parts.hostname or "")
        if host is None:
            raise TargetError(f"{text!r} has no valid host name")
        # Percent-encoded as a browser sends it: the request line is ASCII on the wire.
        path = quote(parts.path or "/", safe=_PATH_SAFE)
        if parts.query:
            path += f"?{quote(parts.query, safe=_QUERY_SAFE)}"
        port = port or SCHEME_PORTS[scheme]
        named = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
        netloc = named if port == SCHEME_PORTS[scheme] else f"{named}:{port}"
        return cls(url=f"{scheme}://{netloc}{path}", scheme=scheme, host=host, port=port, path=path)


@dataclass(frozen=True)
class Vantage:
    """What one vantage point (the agent, or the control) saw of a target."""

    dns: DNSObservation
    endpoints: tuple[EndpointObservation, ...]

    @classmethod
    def unresolved(cls, name: str) -> Vantage:
        """A view that resolved nothing and connected nowhere: the agent's view in a throttle
        test or a trace, whose addresses come from elsewhere (the far end, the site test)."""
        system = SystemResolution(name, "A", (), None, None, (), None, 0.0, None)
        return cls(dns=DNSObservation(system=system, public=()), endpoints=())


@dataclass(frozen=True)
class Verdict:
    verdict: str
    evidence: dict[str, str | int | float | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Hop:
    """One redirect followed: the URL a Location led to, measured in full from both sides."""

    url: str
    agent: Vantage
    control: Vantage | None
    control_failure: str | None


@dataclass(frozen=True)
class SiteMeasurement:
    id: str  # UUIDv7, the collector's deduplication key
    url: str
    started_ms: int  # Unix time
    ms: float
    agent: Vantage
    control: Vantage | None
    control_failure: str | None
    online: bool | None  # the connectivity check, when it ran
    verdict: Verdict
    # The redirects followed after the first URL (whose views are ``agent`` and
    # ``control``), in order; empty when its page was not a redirect.
    hops: tuple[Hop, ...] = ()
    # A throttle test (agent.throttle) rather than a site test: its rounds through the far
    # end, which its verdict is decided from; ``agent`` then holds no DNS or endpoints.
    throttle: ThrottleObservation | None = None
    # A protocol test (agent.protocols): its shaped packets and their twins, likewise.
    protocols: ProtocolObservation | None = None
    # A trace (agent.trace): where along the path the censor reacts, likewise.
    trace: TraceObservation | None = None


def new_measurement_id(now_ms: int | None = None) -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so storage indexes stay append-friendly."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))

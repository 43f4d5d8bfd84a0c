"""Agent model: the observations every probe returns, plain frozen dataclasses.

What one network operation saw (a DNS exchange, a TCP connect, a TLS handshake, an HTTP
round trip) and what a probe composes from them (a DNS test, one endpoint). Standard
library only, as everything in ``agent.model``: the verdict, the wire format and the
collector read these without loading dnspython, aiohttp or the probes. Failures are
strings from ``agent.model.failures``, or None for success.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Looks at an HTTP response before its body is dropped: (body, headers) -> the name of the
# blockpage fingerprint it matches, kept in ``HTTPRoundTrip.fingerprint``.
Inspector = Callable[[bytes, Sequence[tuple[str, str]]], str | None]


@dataclass(frozen=True)
class DNSReply:
    source: str
    port: int
    ms: float  # since the query was sent
    rcode: str
    addresses: tuple[str, ...]
    answer_ttl: int | None  # smallest TTL among the A/AAAA records
    ip_ttl: int | None  # of the packet that carried the reply


@dataclass(frozen=True)
class DNSExchange:
    server: str
    port: int
    name: str
    qtype: str
    replies: tuple[DNSReply, ...]
    ms: float  # time spent, listening window included
    failure: str | None


@dataclass(frozen=True)
class SystemResolution:
    name: str
    qtype: str
    nameservers: tuple[str, ...]
    server: str | None  # the nameserver whose response is reported
    rcode: str | None
    addresses: tuple[str, ...]
    answer_ttl: int | None
    ms: float
    failure: str | None


@dataclass(frozen=True)
class TCPConnect:
    ip: str
    port: int
    ms: float
    failure: str | None


@dataclass(frozen=True)
class TLSHandshake:
    sni: str
    version: str | None
    cipher: str | None
    alpn: str | None
    leaf_sha256: str | None
    chain_sha256: str | None
    chain_length: int
    issuer: str | None  # the leaf issuer's organization, else its RFC 4514 name
    validated: bool
    validation_failure: str | None
    ms: float
    failure: str | None  # of the handshake itself; None even when validation failed

    @classmethod
    def failed(cls, sni: str, ms: float, failure: str | None) -> TLSHandshake:
        """A handshake that never completed, so there is no certificate to describe."""
        return cls(
            sni=sni,
            version=None,
            cipher=None,
            alpn=None,
            leaf_sha256=None,
            chain_sha256=None,
            chain_length=0,
            issuer=None,
            validated=False,
            validation_failure=None,
            ms=ms,
            failure=failure,
        )


@dataclass(frozen=True)
class HTTPRoundTrip:
    host: str
    path: str
    status: int | None
    server: str | None
    location: str | None
    content_type: str | None
    content_length: int | None  # as the header claims
    set_cookie_count: int
    body_length: int  # bytes actually read, at most max_body
    body_truncated: bool
    body_sha256: str | None
    title: str | None
    ms: float
    failure: str | None  # may be set alongside a status: the body was cut
    fingerprint: str | None = None  # name of the blockpage fingerprint the response matched

    @classmethod
    def failed(cls, host: str, path: str, ms: float, failure: str | None) -> HTTPRoundTrip:
        """A request that got no response at all."""
        return cls(
            host=host,
            path=path,
            status=None,
            server=None,
            location=None,
            content_type=None,
            content_length=None,
            set_cookie_count=0,
            body_length=0,
            body_truncated=False,
            body_sha256=None,
            title=None,
            ms=ms,
            failure=failure,
        )


@dataclass(frozen=True)
class DNSObservation:
    system: SystemResolution  # the A query; for an address target, the address itself
    public: tuple[DNSExchange, ...]  # A queries to the public resolvers
    # The AAAA queries: None and () where they were not asked (an address target, and
    # records made before IPv6 was measured).
    system6: SystemResolution | None = None
    public6: tuple[DNSExchange, ...] = ()

    @property
    def addresses(self) -> tuple[str, ...]:
        """What the agent would connect to: the system resolver's answers, the families
        interleaved (A first) so that the first few endpoints cover both."""
        six = self.system6.addresses if self.system6 is not None else ()
        return interleave(self.system.addresses, six)


def interleave(first: Sequence[str], second: Sequence[str]) -> tuple[str, ...]:
    """``first[0], second[0], first[1], ...``, then what is left of the longer one."""
    mixed = [a for pair in zip(first, second, strict=False) for a in pair]
    shorter = min(len(first), len(second))
    return (*mixed, *first[shorter:], *second[shorter:])


@dataclass(frozen=True)
class EndpointObservation:
    ip: str
    port: int
    tcp: TCPConnect
    tls: TLSHandshake | None = None  # https, once TCP connected
    tls_benign: TLSHandshake | None = None  # the SNI swap, when the handshake failed
    http: HTTPRoundTrip | None = None  # over the connection that worked
    http_benign: HTTPRoundTrip | None = None  # Host swap: the request was cut or blockpaged


@dataclass(frozen=True)
class Transfer:
    """One bounded transfer through the far end (``agent.model.farend``): a download or an
    upload on a connection of its own, naming ``trigger``'s name or the benign one.

    Goodput is measured over a window: from the first payload byte to the last, counting the
    bytes after the first read (``skip``), which a queue may have held back and released at
    once. Downloads are timed by the agent, uploads by the far end, which is the one to see
    when the bytes arrive. ``total_us`` runs from the request to the last byte, for transfers
    too short for a window of their own."""

    up: bool  # the direction: False downloads, True uploads
    trigger: bool  # whether it named the target (else the benign name)
    connect_ms: float
    handshake_ms: float | None  # the TLS handshake, for a transfer over TLS
    ttfb_ms: float | None  # request sent -> first byte of the body (downloads)
    bytes: int  # payload bytes moved
    skip: int  # bytes of the first read, left out of the window
    us: int  # first payload byte -> last
    total_us: int  # request -> last payload byte
    status: int | None  # the far end's HTTP status: a refusal is not the network's doing
    failure: str | None


@dataclass(frozen=True)
class ThrottleObservation:
    """The throttle test of one name: interleaved rounds, trigger then benign, each a bounded
    download and upload through the far end at ``address``. ``trigger`` says what carries the
    name: the TLS SNI (``sni``) or the HTTP Host header (``host``)."""

    trigger: str  # "sni" or "host"
    name: str  # the target's name
    benign: str  # the benign name of the other rounds
    address: str | None = None  # the far end's IP; None when the test could not run
    port: int = 0
    transfers: tuple[Transfer, ...] = ()
    failure: str | None = None  # why the test could not run: no far end, no token
    window_ms: int = 0  # the longest a transfer was timed for
    # What each download and upload asked for: one that moved less was cut by its window.
    down_size: int = 0
    up_size: int = 0

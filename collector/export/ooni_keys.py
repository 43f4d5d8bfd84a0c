"""Collector export: a measurement's network operations in OONI's data formats. Pure.

The agent's DNS queries (df-002-dnst), TCP connects (df-005-tcpconnect), TLS handshakes
(df-006-tlshandshake) and HTTP round trips (df-001-httpt), and the control's view in Web
Connectivity's ``control`` shape (ts-017). ``collector.export.ooni`` puts them together.

netsonde records each operation's duration, not when it began, so ``t0`` and ``t``
(seconds since the measurement started) are laid out as ``agent.site`` runs the steps:
the DNS queries at once from 0, then every endpoint at once, each endpoint's TCP, TLS,
benign TLS, HTTP and benign HTTP one after the other. ``t - t0`` is the measured duration;
``t0`` is that reconstruction. What netsonde does not keep (bodies, certificates, full
header lists, raw DNS responses) is left out or empty; docs/design/010-export.md lists it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from agent.model.measurement import Vantage
from agent.model.observations import (
    DNSExchange,
    DNSObservation,
    DNSReply,
    EndpointObservation,
    HTTPRoundTrip,
    SystemResolution,
    TLSHandshake,
)
from agent.model.rcodes import rcode_number

__all__ = [
    "Transactions",
    "control_keys",
    "dns_keys",
    "endpoint_address",
    "endpoint_keys",
    "final_response",
]

# OONI's tags: "classic" marks what the classic Web Connectivity algorithm reads; the rest
# are netsonde's extra measurements.
CLASSIC = ("classic", "depth=0")
PUBLIC_RESOLVER = ("depth=0", "netsonde_public_resolver")
BENIGN_SNI = ("depth=0", "netsonde_benign_sni")
BENIGN_HOST = ("depth=0", "netsonde_benign_host")


class Transactions:
    """OONI's ``transaction_id``s, in order: one per DNS query, one per endpoint."""

    def __init__(self) -> None:
        self.transaction = 0

    def next_id(self) -> int:
        self.transaction += 1
        return self.transaction


def _s(ms: float) -> float:
    return round(ms / 1000, 6)


def endpoint_address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _answers(addresses: tuple[str, ...], ttl: int | None) -> list[dict[str, Any]]:
    return [
        {"answer_type": "AAAA", "ipv6": a, "ttl": ttl}
        if ":" in a
        else {"answer_type": "A", "ipv4": a, "ttl": ttl}
        for a in addresses
    ]


def _system_query(s: SystemResolution, tid: int) -> dict[str, Any]:
    return {
        "answers": _answers(s.addresses, s.answer_ttl),
        "engine": "udp",
        "failure": s.failure,
        "hostname": s.name,
        "query_type": s.qtype,
        "rcode": None if s.rcode is None else rcode_number(s.rcode),
        "resolver_address": "" if s.server is None else endpoint_address(s.server, 53),
        "resolver_hostname": None,
        "resolver_port": None,
        "t0": 0.0,
        "t": _s(s.ms),
        "tags": list(CLASSIC),
        "transaction_id": tid,
    }


def _reply_query(x: DNSExchange, r: DNSReply | None, tid: int) -> dict[str, Any]:
    return {
        "answers": [] if r is None else _answers(r.addresses, r.answer_ttl),
        "engine": "udp",
        "failure": x.failure if r is None else None,
        "hostname": x.name,
        "query_type": x.qtype,
        "rcode": None if r is None else rcode_number(r.rcode),
        "resolver_address": endpoint_address(x.server, x.port),
        "resolver_hostname": None,
        "resolver_port": None,
        "t0": 0.0,
        "t": _s(x.ms if r is None else r.ms),
        "tags": list(PUBLIC_RESOLVER),
        "transaction_id": tid,
    }


def dns_keys(dns: DNSObservation, ids: Transactions) -> tuple[list[Any], list[Any], float]:
    """``queries``, ``x_dns_duplicate_responses`` (a public resolver's replies after its
    first: what on-path injection looks like) and when the DNS step ended, in seconds."""
    queries = [_system_query(dns.system, ids.next_id())]
    duplicates = []
    for exchange in dns.public:
        tid = ids.next_id()
        first, *later = exchange.replies or (None,)
        queries.append(_reply_query(exchange, first, tid))
        duplicates += [_reply_query(exchange, reply, tid) for reply in later]
    ends = [dns.system.ms, *(x.ms for x in dns.public)]
    return queries, duplicates, _s(max(ends))


def _tls(
    e: EndpointObservation, h: TLSHandshake, t0: float, tid: int, tags: tuple[str, ...]
) -> dict[str, Any]:
    # A certificate refused fails OONI's handshake (its client verifies during it). The
    # benign name's handshake asks only whether it completes: the site's certificate is
    # not for that name.
    benign = tags == BENIGN_SNI
    return {
        "network": "tcp",
        "address": endpoint_address(e.ip, e.port),
        "cipher_suite": h.cipher or "",
        "failure": h.failure if benign else h.failure or h.validation_failure,
        "negotiated_protocol": h.alpn or "",
        "no_tls_verify": benign,
        "peer_certificates": [],
        "server_name": h.sni,
        "t0": t0,
        "t": round(t0 + _s(h.ms), 6),
        "tags": list(tags),
        "tls_version": h.version or "",
        "transaction_id": tid,
        "x_netsonde_validation_failure": h.validation_failure,
        "x_netsonde_leaf_sha256": h.leaf_sha256,
        "x_netsonde_issuer": h.issuer,
    }


def _headers(h: HTTPRoundTrip) -> list[list[str]]:
    pairs = [("Server", h.server), ("Location", h.location), ("Content-Type", h.content_type)]
    if h.content_length is not None:
        pairs.append(("Content-Length", str(h.content_length)))
    return [[name, value] for name, value in pairs if value is not None]


def _http(
    e: EndpointObservation,
    h: HTTPRoundTrip,
    scheme: str,
    t0: float,
    tid: int,
    tags: tuple[str, ...],
) -> dict[str, Any]:
    headers = _headers(h)
    return {
        "network": "tcp",
        "address": endpoint_address(e.ip, e.port),
        "alpn": "http/1.1",
        "failure": h.failure,
        "request": {
            "body": "",
            "body_is_truncated": False,
            "headers_list": [["Host", h.host]],
            "headers": {"Host": h.host},
            "method": "GET",
            "tor": {"exit_ip": None, "exit_name": None, "is_tor": False},
            "x_transport": "tcp",
            "url": f"{scheme}://{h.host}{h.path}",
        },
        "response": {
            "body": None if h.status is None else "",
            "body_is_truncated": h.body_truncated,
            "code": h.status or 0,
            "headers_list": headers,
            "headers": dict(headers),
            "x_netsonde_body_length": h.body_length,
            "x_netsonde_body_sha256": h.body_sha256,
            "x_netsonde_title": h.title,
            "x_netsonde_fingerprint": h.fingerprint,
        },
        "t0": t0,
        "t": round(t0 + _s(h.ms), 6),
        "tags": list(tags),
        "transaction_id": tid,
    }


def _endpoint(
    e: EndpointObservation, scheme: str, start: float, tid: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each operation of one endpoint as (test key, entry), on its own timeline."""
    tcp_end = round(start + _s(e.tcp.ms), 6)
    yield (
        "tcp_connect",
        {
            "ip": e.ip,
            "port": e.port,
            "status": {"failure": e.tcp.failure, "success": e.tcp.failure is None},
            "t0": start,
            "t": tcp_end,
            "tags": list(CLASSIC),
            "transaction_id": tid,
        },
    )
    at = tcp_end
    for handshake, tags in ((e.tls, CLASSIC), (e.tls_benign, BENIGN_SNI)):
        if handshake is not None:
            entry = _tls(e, handshake, at, tid, tags)
            at = entry["t"]
            yield "tls_handshakes", entry
    for trip, tags in ((e.http, CLASSIC), (e.http_benign, BENIGN_HOST)):
        if trip is not None:
            entry = _http(e, trip, scheme, at, tid, tags)
            at = entry["t"]
            yield "requests", entry


def endpoint_keys(v: Vantage, scheme: str, start: float, ids: Transactions) -> dict[str, list[Any]]:
    """``tcp_connect``, ``tls_handshakes`` and ``requests`` of every endpoint, which all
    start when the DNS step ends (``start``)."""
    keys: dict[str, list[Any]] = {"tcp_connect": [], "tls_handshakes": [], "requests": []}
    for endpoint in v.endpoints:
        for key, entry in _endpoint(endpoint, scheme, start, ids.next_id()):
            keys[key].append(entry)
    return keys


def final_response(v: Vantage | None) -> HTTPRoundTrip | None:
    """The first HTTP response the vantage got (not the benign Host's): Web Connectivity's
    final response."""
    if v is None:
        return None
    return next((e.http for e in v.endpoints if e.http and e.http.status is not None), None)


def control_keys(c: Vantage) -> dict[str, Any]:
    """The control's view as Web Connectivity's test helper answers."""
    tcp, tls = {}, {}
    for e in c.endpoints:
        address = endpoint_address(e.ip, e.port)
        tcp[address] = {"status": e.tcp.failure is None, "failure": e.tcp.failure}
        if e.tls is not None:
            failure = e.tls.failure or e.tls.validation_failure
            tls[address] = {"server_name": e.tls.sni, "status": failure is None, "failure": failure}
    final = final_response(c)
    trip = final or next((e.http for e in c.endpoints if e.http), None)
    http: dict[str, Any] = {
        "body_length": -1,
        "failure": None,
        "title": "",
        "headers": {},
        "status_code": -1,
    }
    if trip is not None:
        http["failure"] = trip.failure if final is None else None
    if final is not None:
        http |= {
            "body_length": final.body_length,
            "title": final.title or "",
            "headers": dict(_headers(final)),
            "status_code": final.status,
        }
    system = c.dns.system
    return {
        "tcp_connect": tcp,
        "tls_handshake": tls,
        "http_request": http,
        "dns": {"failure": system.failure, "addrs": list(system.addresses)},
    }

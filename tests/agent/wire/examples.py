"""Wire test helpers: observation builders and example measurements (clean, without a
control, injected DNS, TLS reset with the SNI swap, HTTP Host swap, and clean with the AAAA
queries, for a site without IPv6 and for a dual-stack one), each with the control's view, and
what a round trip is allowed to change.

docs/wire-format.md, "Sizes", quotes these examples' encoded sizes (tests/agent/wire/test_record.py
holds them to it).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from agent.model import failures
from agent.model.measurement import Hop, SiteMeasurement, Vantage, Verdict, new_measurement_id
from agent.model.observations import (
    DNSExchange,
    DNSObservation,
    DNSReply,
    EndpointObservation,
    HTTPRoundTrip,
    SystemResolution,
    TCPConnect,
    TLSHandshake,
)

HOST = "www.example.org"
ID = new_measurement_id(1_717_171_717_171)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def system(addresses: tuple[str, ...] = ("192.0.2.10",), **kw: Any) -> SystemResolution:
    fields: dict[str, Any] = {
        "name": HOST,
        "qtype": "A",
        "nameservers": ("100.64.0.53",),
        "server": "100.64.0.53",
        "rcode": "NOERROR",
        "addresses": addresses,
        "answer_ttl": 300,
        "ms": 12.4,
        "failure": None,
    }
    return SystemResolution(**{**fields, **kw})


def reply(source: str, ms: float, addresses: tuple[str, ...], ip_ttl: int) -> DNSReply:
    return DNSReply(source, 53, ms, "NOERROR", addresses, 300, ip_ttl)


def exchange(*replies: DNSReply) -> DNSExchange:
    failure = None if replies else failures.GENERIC_TIMEOUT
    return DNSExchange("198.51.100.53", 53, HOST, "A", replies, 301.7, failure)


def tls(sni: str = HOST, **kw: Any) -> TLSHandshake:
    fields: dict[str, Any] = {
        "sni": sni,
        "version": "TLSv1.3",
        "cipher": "TLS_AES_256_GCM_SHA384",
        "alpn": "http/1.1",
        "leaf_sha256": sha("leaf"),
        "chain_sha256": sha("chain"),
        "chain_length": 2,
        "issuer": "Netsonde Lab CA",
        "validated": True,
        "validation_failure": None,
        "ms": 8.6,
        "failure": None,
    }
    return TLSHandshake(**{**fields, **kw})


def http(host: str = HOST, **kw: Any) -> HTTPRoundTrip:
    fields: dict[str, Any] = {
        "host": host,
        "path": "/",
        "status": 200,
        "server": "nginx",
        "location": None,
        "content_type": "text/html; charset=utf-8",
        "content_length": 1256,
        "set_cookie_count": 0,
        "body_length": 1256,
        "body_truncated": False,
        "body_sha256": sha("body"),
        "title": "Example Domain",
        "ms": 15.2,
        "failure": None,
    }
    return HTTPRoundTrip(**{**fields, **kw})


def endpoint(ip: str = "192.0.2.10", port: int = 443, **kw: Any) -> EndpointObservation:
    tcp = kw.pop("tcp", TCPConnect(ip, port, 4.3, None))
    return EndpointObservation(ip=ip, port=port, tcp=tcp, **kw)


def clean_vantage() -> Vantage:
    dns = DNSObservation(system(), (exchange(reply("198.51.100.53", 21.5, ("192.0.2.10",), 57)),))
    return Vantage(dns, (endpoint(tls=tls(), http=http()),))


def site(agent: Vantage, verdict: Verdict, *, url: str = f"https://{HOST}/") -> SiteMeasurement:
    return SiteMeasurement(
        ID, url, 1_717_171_717_171, 431.9, agent, clean_vantage(), None, None, verdict
    )


CLEAN = site(clean_vantage(), Verdict("accessible"))
INJECTED = site(
    Vantage(
        DNSObservation(
            system(("203.0.113.66",)),
            (
                exchange(
                    reply("198.51.100.53", 3.1, ("203.0.113.66",), 61),
                    reply("198.51.100.53", 24.9, ("192.0.2.10",), 57),
                ),
            ),
        ),
        (
            endpoint(
                "203.0.113.66",
                tls=tls(
                    validated=False,
                    validation_failure=failures.SSL_INVALID_HOSTNAME,
                    issuer="Blockpage Inc",
                ),
            ),
        ),
    ),
    Verdict("dns_injection", {"injected": "203.0.113.66", "first_ttl": 61, "gap_ms": 21.8}),
)
TLS_FAILED = site(
    Vantage(
        clean_vantage().dns,
        (
            endpoint(
                tls=tls(
                    version=None,
                    cipher=None,
                    alpn=None,
                    leaf_sha256=None,
                    chain_sha256=None,
                    chain_length=0,
                    issuer=None,
                    validated=False,
                    failure=failures.CONNECTION_RESET,
                ),
                tls_benign=tls("example.com"),
            ),
        ),
    ),
    Verdict("tls_sni_blocking", {"failure": failures.CONNECTION_RESET, "benign_ok": True}),
)
HOST_SWAP = site(
    Vantage(
        clean_vantage().dns,
        (
            endpoint(
                port=80,
                http=http(
                    status=None,
                    server=None,
                    content_type=None,
                    content_length=None,
                    body_length=0,
                    body_sha256=None,
                    title=None,
                    failure=failures.CONNECTION_RESET,
                ),
                http_benign=http("example.com", title="Benign"),
            ),
        ),
    ),
    Verdict("http_host_blocking"),
    url=f"http://{HOST}/",
)
NO_CONTROL = dataclasses.replace(CLEAN, control=None, control_failure="no_control")


def _hop_vantage(host: str, ip: str) -> Vantage:
    dns = DNSObservation(system((ip,), name=host), ())
    return Vantage(dns, (endpoint(ip, tls=tls(host), http=http(host, path="/a/b?c=d")),))


_MOVED = http(status=301, location="https://www.example.net/a/b?c=d", title=None, body_length=0)
# http -> https on another host: a version 2 record, its hop's names implied by the hop's URL.
_MOVED_VIEW = Vantage(clean_vantage().dns, (endpoint(port=80, http=_MOVED),))
REDIRECTED = dataclasses.replace(
    site(_MOVED_VIEW, Verdict("ok"), url=f"http://{HOST}/"),
    control=_MOVED_VIEW,
    hops=(
        Hop(
            "https://www.example.net/a/b?c=d",
            _hop_vantage("www.example.net", "192.0.2.20"),
            _hop_vantage("www.example.net", "192.0.2.20"),
            None,
        ),
    ),
)
SITE6 = "2001:db8::10"


def with_aaaa(v: Vantage, *addresses: str) -> Vantage:
    """``v`` as measured now: with the AAAA queries (an empty answer if no ``addresses``), and
    an endpoint at each IPv6 address, like the IPv4 one."""
    system6 = system(addresses, qtype="AAAA", ms=11.0, answer_ttl=300 if addresses else None)
    if not addresses:
        system6 = dataclasses.replace(system6, failure=failures.DNS_NO_ANSWER)
    replies = (DNSReply("198.51.100.53", 53, 20.0, "NOERROR", addresses, system6.answer_ttl, 57),)
    public6 = (dataclasses.replace(exchange(*replies), qtype="AAAA", ms=300.0),)
    ends = tuple(
        dataclasses.replace(
            v.endpoints[0], ip=ip, tcp=dataclasses.replace(v.endpoints[0].tcp, ip=ip)
        )
        for ip in addresses
    )
    dns = dataclasses.replace(v.dns, system6=system6, public6=public6)
    return Vantage(dns, (*v.endpoints, *ends))


CLEAN_AAAA = dataclasses.replace(
    CLEAN, agent=with_aaaa(CLEAN.agent), control=with_aaaa(clean_vantage())
)
DUAL_STACK = dataclasses.replace(
    CLEAN, agent=with_aaaa(CLEAN.agent, SITE6), control=with_aaaa(clean_vantage(), SITE6)
)
EXAMPLES = {
    "clean": CLEAN,
    "clean_no_control": NO_CONTROL,
    "injected": INJECTED,
    "tls_failed": TLS_FAILED,
    "host_swap": HOST_SWAP,
    "redirected": REDIRECTED,
    "clean_aaaa": CLEAN_AAAA,
    "dual_stack": DUAL_STACK,
}


def normalise(value: Any) -> Any:
    """What the wire promises to keep: ms rounded to whole numbers, titles cut to 128."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            if field.name == "ms":
                item = float(round(item))
            elif field.name == "title" and item is not None:
                item = item[:128]
            else:
                item = normalise(item)
            changes[field.name] = item
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(normalise(item) for item in value)
    return value

"""Test factories: recorded-looking observations with clean defaults, overridden per case.

Every factory builds what a working measurement of a lab site looks like; a test changes
only the one thing its case is about (``dataclasses.replace`` or a keyword).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.fingerprints import Fingerprint, FingerprintSet
from agent.model.measurement import Target, Vantage
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

# Measurements the censor lab recorded (agent and control views), as wire records.
RECORDED = Path(__file__).with_name("recorded")
SITE_IP = "192.0.2.10"
PUBLIC_RESOLVER = "198.51.100.8"
BENIGN = "example.com"
BLOCKPAGE_FP = "cp.b_nat_pak_isp_common_blockpage"


def target(url: str = "https://wikipedia.org/") -> Target:
    return Target.parse(url)


def system(
    *addresses: str, failure: str | None = None, rcode: str | None = None
) -> SystemResolution:
    return SystemResolution(
        name="wikipedia.org",
        qtype="A",
        nameservers=("100.64.0.53",),
        server="100.64.0.53",
        rcode=rcode or ("NOERROR" if failure is None else None),
        addresses=addresses,
        answer_ttl=300 if addresses else None,
        ms=3.0,
        failure=failure,
    )


def reply(*addresses: str, rcode: str = "NOERROR", ip_ttl: int | None = 62) -> DNSReply:
    return DNSReply(
        source=PUBLIC_RESOLVER,
        port=53,
        ms=27.0,
        rcode=rcode,
        addresses=addresses,
        answer_ttl=300 if addresses else None,
        ip_ttl=ip_ttl,
    )


def exchange(*replies: DNSReply, failure: str | None = None) -> DNSExchange:
    return DNSExchange(
        server=PUBLIC_RESOLVER,
        port=53,
        name="wikipedia.org",
        qtype="A",
        replies=replies,
        ms=300.0,
        failure=failure if failure is not None or replies else "generic_timeout_error",
    )


def dns(
    *addresses: str, failure: str | None = None, public: tuple[DNSExchange, ...] | None = None
) -> DNSObservation:
    if public is None:
        public = (exchange(reply(*addresses)),) if addresses else ()
    return DNSObservation(system=system(*addresses, failure=failure), public=public)


def tcp(ip: str = SITE_IP, failure: str | None = None) -> TCPConnect:
    return TCPConnect(ip=ip, port=443, ms=2.0, failure=failure)


def handshake(
    sni: str = "wikipedia.org",
    *,
    failure: str | None = None,
    validated: bool = True,
    validation_failure: str | None = None,
    issuer: str | None = "netsonde lab CA",
    leaf: str = "aa" * 32,
) -> TLSHandshake:
    done = failure is None
    return TLSHandshake(
        sni=sni,
        version="TLSv1.3" if done else None,
        cipher="TLS_AES_256_GCM_SHA384" if done else None,
        alpn=None,
        leaf_sha256=leaf if done else None,
        chain_sha256=leaf if done else None,
        chain_length=2 if done else 0,
        issuer=issuer if done else None,
        validated=validated and done and validation_failure is None,
        validation_failure=validation_failure,
        ms=4.0,
        failure=failure,
    )


def page(
    status: int | None = 200,
    *,
    title: str | None = "Wikipedia",
    body_length: int = 5000,
    fingerprint: str | None = None,
    failure: str | None = None,
    host: str = "wikipedia.org",
) -> HTTPRoundTrip:
    answered = status is not None
    return HTTPRoundTrip(
        host=host,
        path="/",
        status=status,
        server="lab" if answered else None,
        location=None,
        content_type="text/html" if answered else None,
        content_length=body_length if answered else None,
        set_cookie_count=0,
        body_length=body_length if answered else 0,
        body_truncated=False,
        body_sha256="bb" * 32 if answered else None,
        title=title if answered else None,
        ms=5.0,
        failure=failure,
        fingerprint=fingerprint,
    )


def cut(failure: str = "connection_reset") -> HTTPRoundTrip:
    return page(None, failure=failure)


def endpoint(ip: str = SITE_IP, scheme: str = "https", **overrides: Any) -> EndpointObservation:
    """A working endpoint; a failed ``tcp`` drops the later layers unless they are given."""
    port = 443 if scheme == "https" else 80
    clean = EndpointObservation(
        ip=ip,
        port=port,
        tcp=TCPConnect(ip=ip, port=port, ms=2.0, failure=None),
        tls=handshake() if scheme == "https" else None,
        http=page(),
    )
    if "tcp" in overrides and isinstance(overrides["tcp"], str):
        overrides["tcp"] = TCPConnect(ip=ip, port=port, ms=2.0, failure=overrides["tcp"])
    if overrides.get("tcp") is not None and overrides["tcp"].failure is not None:
        overrides.setdefault("tls", None)
        overrides.setdefault("http", None)
    return replace(clean, **overrides)


def vantage(
    *addresses: str,
    scheme: str = "https",
    endpoints: tuple[EndpointObservation, ...] | None = None,
    failure: str | None = None,
    public: tuple[DNSExchange, ...] | None = None,
) -> Vantage:
    """A vantage whose DNS gives ``addresses`` (default: the site's IP) and whose
    endpoints (default: one working endpoint per address) are as given."""
    if not addresses and failure is None:
        addresses = (SITE_IP,)
    if endpoints is None:
        endpoints = tuple(endpoint(ip, scheme) for ip in addresses)
    return Vantage(dns=dns(*addresses, failure=failure, public=public), endpoints=endpoints)


def fingerprint_set() -> FingerprintSet:
    """A small set: the Pakistani blockpage, a DNS sinkhole, and known false positives."""
    return FingerprintSet(
        [
            Fingerprint(BLOCKPAGE_FP, "nat", "body", "contains", "prohibited for viewership", 5),
            Fingerprint("dns.sinkhole", "isp", "dns", "full", "203.0.113.99", 5),
            Fingerprint("dns.sinkhole_bogon", "isp", "dns", "full", "10.10.34.34", 5),
            Fingerprint("dns.fp_cdn", "fp", "dns", "full", "203.0.113.77", 5),
        ]
    )

"""Agent trace test: where along the path the censor of a blocked target sits, as a measurement.

Beside ``agent.site`` and at its level. :func:`plan_for` reads a site test's verdict and
says what to trace: a ``tcp.*`` verdict whose trigger is the IP traces the SYN, a ``tls.*``
or ``http.*`` one whose trigger is the SNI or the Host traces the ClientHello or the
request, on the address whose endpoint failed (of the family the verdict names; on the
redirect hop that failed). :func:`measure_trace` runs the probe (``agent.probes.trace``)
and decides (``agent.verdict.trace``); the result is a :class:`SiteMeasurement` whose
``trace`` field holds the attempts, printed, spooled, uploaded, stored and reclassified as
site tests are.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from agent.fingerprints import FingerprintSet
from agent.model.measurement import (
    SiteMeasurement,
    Target,
    Vantage,
    Verdict,
    new_measurement_id,
)
from agent.model.observations import EndpointObservation
from agent.probes import trace as probe
from agent.probes.trace import Inspector, TracePlan
from agent.verdict.trace import decide_trace

__all__ = ["TraceConfig", "collector_addresses", "measure_trace", "plan_for", "traceable"]

_TRIGGERS = {"tcp": ("ip",), "tls": ("sni",), "http": ("host",)}


@dataclass(frozen=True)
class TraceConfig:
    benign_name: str = "example.com"
    # Hosts behind the same routers (one per family) whose packets stand for genuine ones,
    # and the benign destination of an ``ip`` trigger: the collector's addresses. None of a
    # family: its ip triggers are not traced, and forensics compare with the target's other
    # web port only.
    references: tuple[str, ...] = ()
    max_ttl: int = 16
    window: float = 2.0
    timeout: float = 5.0
    fingerprints: FingerprintSet | None = None


def collector_addresses(url: str | None) -> tuple[str, ...]:
    """The collector's addresses, the first of each family: the benign destination of ``ip``
    triggers and the reference hosts. It resolves the name (blocking: call in a thread)."""
    host = urlsplit(url).hostname if url else None
    if not host:
        return ()
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return ()
    first: dict[int, str] = {}
    for family, *_, sockaddr in found:
        first.setdefault(int(family), str(sockaddr[0]))
    return tuple(first.values())


def traceable(m: SiteMeasurement) -> str | None:
    """The trigger a trace of this measurement would repeat, or None."""
    layer, _, _ = m.verdict.verdict.partition(".")
    trigger = m.verdict.evidence.get("trigger")
    if m.trace is not None or m.throttle is not None or m.protocols is not None:
        return None
    return trigger if isinstance(trigger, str) and trigger in _TRIGGERS.get(layer, ()) else None


def _vantage(m: SiteMeasurement) -> tuple[str, Vantage]:
    """The URL and the agent's view where the verdict was reached (a redirect hop's)."""
    hop = m.verdict.evidence.get("redirect_hop")
    if isinstance(hop, int) and 1 <= hop <= len(m.hops):
        return m.hops[hop - 1].url, m.hops[hop - 1].agent
    return m.url, m.agent


def _failed(endpoint: EndpointObservation, trigger: str) -> bool:
    """Whether this endpoint is where the trigger failed: TCP for an IP trigger; for the SNI
    or Host, a connection that opened and then failed (or blockpaged) at that layer."""
    if trigger == "ip":
        return endpoint.tcp.failure is not None
    if endpoint.tcp.failure is not None:
        return False
    if trigger == "sni":
        return endpoint.tls is not None and endpoint.tls.failure is not None
    http = endpoint.http
    return http is not None and (http.failure is not None or endpoint.http_benign is not None)


def plan_for(
    m: SiteMeasurement, config: TraceConfig, *, force: bool = False
) -> tuple[Target, TracePlan] | None:
    """What to trace for a blocked site test, or None when its verdict has no trigger to
    repeat (or it is an ``ip`` trigger and there is no reference address to compare with).
    With ``force``, a site test with no such verdict is traced too, by its SNI (https) or
    Host (http) on its first connected endpoint: to see the path, or to check that a trace
    of an open site shows no censor."""
    trigger = traceable(m)
    other_test = m.trace is not None or m.throttle is not None or m.protocols is not None
    if trigger is None and force and not other_test:
        trigger = "sni" if m.url.startswith("https:") else "host"
        m = replace(m, verdict=Verdict(m.verdict.verdict, {}))
    if trigger is None:
        return None
    url, view = _vantage(m)
    target = Target.parse(url)
    family = m.verdict.evidence.get("family")
    endpoints = [
        e
        for e in view.endpoints
        if family is None or str(ipaddress.ip_address(e.ip).version) == family
    ]
    endpoint = next((e for e in endpoints if _failed(e, trigger)), None)
    if endpoint is None and force:
        endpoint = next((e for e in endpoints if e.tcp.failure is None), None)
    if endpoint is None:
        return None
    # An IPv6 trace compares with an IPv6 host.
    same = [r for r in config.references if _version(r) == _version(endpoint.ip)]
    reference = same[0] if same else None
    if trigger == "ip" and reference is None:
        return None
    plan = TracePlan(
        trigger=trigger,
        name=endpoint.ip if trigger == "ip" else target.host,
        benign=reference if trigger == "ip" and reference else config.benign_name,
        address=endpoint.ip,
        port=endpoint.port,
        path=target.path,
        reference_address=reference,
        max_ttl=config.max_ttl,
        window=config.window,
        connect_timeout=config.timeout,
    )
    return target, plan


def _status(head: bytes) -> int | None:
    """An HTTP response's status from its first line; None for anything else (TLS bytes)."""
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    ok = len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit()
    return int(parts[1]) if ok and len(parts[1]) == 3 else None


def _version(address: str) -> int:
    return ipaddress.ip_address(address).version


def _inspector(fingerprints: FingerprintSet | None) -> Inspector:
    def inspect(answer: bytes) -> tuple[int | None, str | None]:
        head, _, body = answer.partition(b"\r\n\r\n")
        status = _status(head)
        name = None
        if fingerprints is not None:
            match = fingerprints.match_body(body)
            if match is not None and not match.false_positive:
                name = match.fingerprint.name
        return status, name

    return inspect


async def measure_trace(target: Target, plan: TracePlan, config: TraceConfig) -> SiteMeasurement:
    """One trace of ``target`` as a measurement."""
    started = time.time()
    start = time.monotonic()
    obs = await probe.measure(plan, _inspector(config.fingerprints))
    ms = round((time.monotonic() - start) * 1000, 1)
    return SiteMeasurement(
        id=new_measurement_id(int(started * 1000)),
        url=target.url,
        started_ms=int(started * 1000),
        ms=ms,
        agent=Vantage.unresolved(target.host),
        control=None,
        control_failure=None,
        online=None,
        verdict=decide_trace(obs),
        trace=obs,
    )

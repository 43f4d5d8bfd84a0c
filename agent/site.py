"""Agent site: one site test, from a target to a measurement with a verdict.

Runs the DNS probe, asks the control what the target looks like from outside,
measures every endpoint (the agent's addresses and the control's) in parallel,
then hands both views to the pure ``agent.verdict``; a redirect is followed as a browser
would, each hop measured the same way (``agent.verdict.chain``). The same
``measure_vantage`` is what the collector runs to produce a control. With
``ProbeConfig.may_reach`` set, both connect only where it allows; ``measure_vantage`` also
leaves the addresses it refuses out of the DNS answer it returns
(docs/design/002-verdicts.md says how), while the agent keeps its own answer whole.
Both address families are measured: the endpoints interleave IPv4 and IPv6 addresses, the
latter only where this host has a route to them (``agent.net.route``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from agent.fingerprints import FingerprintSet, inspector
from agent.model import failures
from agent.model.measurement import Hop, SiteMeasurement, Target, Vantage, new_measurement_id
from agent.model.observations import (
    DNSExchange,
    DNSObservation,
    SystemResolution,
    interleave,
)
from agent.net.route import has_route
from agent.probes import endpoint
from agent.probes.dns import measure as measure_dns
from agent.probes.endpoint import EndpointPlan
from agent.verdict import judge_chain

DEFAULT_BENIGN_NAME = "example.com"

log = logging.getLogger("netsonde.agent")
_told_unrouted: list[str] = []  # the first IPv6 address skipped for want of a route


@dataclass(frozen=True)
class ProbeConfig:
    resolvers: tuple[str, ...] = ()
    benign_name: str = DEFAULT_BENIGN_NAME
    ca_file: str | None = None
    timeout: float = 5.0
    dns_timeout: float = 2.0
    dns_window: float = 0.3
    fingerprints: FingerprintSet | None = None
    max_endpoints: int = 4
    resolv_conf: str = "/etc/resolv.conf"
    # Where the site test may connect, when it runs on someone else's say-so (a control,
    # a collector's target: agent.model.addresses.may_reach); None: wherever DNS points.
    may_reach: Callable[[str], bool] | None = None


class ControlSource(Protocol):
    async def fetch(self, target: Target, addresses: Sequence[str]) -> Vantage | str:
        """The control's view of the target, or a failure string."""
        ...


def _plan(target: Target, config: ProbeConfig) -> EndpointPlan:
    return EndpointPlan(
        scheme=target.scheme,
        host=target.host,
        port=target.port,
        path=target.path,
        benign_name=config.benign_name,
        ca_file=config.ca_file,
        timeout=config.timeout,
        inspect=inspector(config.fingerprints),
    )


async def _measure_dns(target: Target, config: ProbeConfig) -> DNSObservation:
    return await measure_dns(
        target.host,
        config.resolvers,
        timeout=config.dns_timeout,
        window=config.dns_window,
        resolv_conf=config.resolv_conf,
    )


def _unique(addresses: Sequence[str], limit: int) -> list[str]:
    """Up to ``limit`` distinct addresses, the families interleaved so that a few endpoints
    cover both; an IPv6 address this host has no route to is left out."""
    found = [ip for ip in dict.fromkeys(addresses) if ":" not in ip or _routed(ip)]
    four, six = [ip for ip in found if ":" not in ip], [ip for ip in found if ":" in ip]
    return list(interleave(four, six))[:limit]


def _routed(ip: str) -> bool:
    if has_route(ip):
        return True
    if not _told_unrouted:
        _told_unrouted.append(ip)
        log.warning("no route to %s: IPv6 endpoints are not measured from this host", ip)
    return False


def _reachable(addresses: Sequence[str], config: ProbeConfig) -> list[str]:
    """What the site test may connect to: every address, unless ``config.may_reach`` says
    otherwise (a control, or a target someone else listed); the DNS answer stays as it was."""
    if config.may_reach is None:
        return list(addresses)
    return [ip for ip in addresses if config.may_reach(ip)]


def _redact(dns_obs: DNSObservation, may_reach: Callable[[str], bool]) -> DNSObservation:
    """The answers without the addresses ``may_reach`` refuses, so a control's reply tells
    nobody what the collector's own network resolves, nor where its own resolvers are; an
    answer left empty that way is marked ``dns_non_public_answer``."""
    six = dns_obs.system6
    return DNSObservation(
        system=_redact_system(dns_obs.system, may_reach),
        public=tuple(_redact_exchange(e, may_reach) for e in dns_obs.public),
        system6=None if six is None else _redact_system(six, may_reach),
        public6=tuple(_redact_exchange(e, may_reach) for e in dns_obs.public6),
    )


def _redact_system(system: SystemResolution, may_reach: Callable[[str], bool]) -> SystemResolution:
    kept = tuple(a for a in system.addresses if may_reach(a))
    failure = system.failure
    if system.addresses and not kept:
        failure = failure or failures.DNS_NON_PUBLIC_ANSWER
    server = system.server if system.server is not None and may_reach(system.server) else None
    return dataclasses.replace(
        system,
        addresses=kept,
        failure=failure,
        nameservers=tuple(n for n in system.nameservers if may_reach(n)),
        server=server,
    )


def _redact_exchange(exchange: DNSExchange, may_reach: Callable[[str], bool]) -> DNSExchange:
    replies = tuple(
        dataclasses.replace(r, addresses=tuple(a for a in r.addresses if may_reach(a)))
        for r in exchange.replies
    )
    return dataclasses.replace(exchange, replies=replies)


async def measure_vantage(
    target: Target, config: ProbeConfig, extra_addresses: Sequence[str] = ()
) -> Vantage:
    """DNS, then every endpoint: what the collector runs as the control.

    DNS is asked once and the endpoints are the addresses it gave, so a name that answers
    differently the next time (DNS rebinding) cannot move a connection after the check.
    """
    dns_obs = await _measure_dns(target, config)
    ips = _unique(_reachable([*dns_obs.addresses, *extra_addresses], config), config.max_endpoints)
    if config.may_reach is not None:
        dns_obs = _redact(dns_obs, config.may_reach)
    plan = _plan(target, config)
    endpoints = await asyncio.gather(*(endpoint.measure(ip, plan) for ip in ips))
    return Vantage(dns=dns_obs, endpoints=tuple(endpoints))


async def _measure_hop(
    target: Target, config: ProbeConfig, control: ControlSource | None
) -> tuple[Vantage, Vantage | None, str | None]:
    """One URL from the agent, with the control's view of it in parallel: the agent's view,
    the control's (None if it failed) and why it failed."""
    dns_obs = await _measure_dns(target, config)
    plan = _plan(target, config)
    own_ips = _unique(_reachable(dns_obs.addresses, config), config.max_endpoints)
    control_task = (
        asyncio.ensure_future(control.fetch(target, own_ips)) if control is not None else None
    )
    own = await asyncio.gather(*(endpoint.measure(ip, plan) for ip in own_ips))
    control_view: Vantage | None = None
    control_failure: str | None = failures.NO_CONTROL
    if control_task is not None:
        answer = await control_task
        if isinstance(answer, Vantage):
            control_view, control_failure = answer, None
        else:
            control_failure = answer
    extra_ips: list[str] = []
    if control_view is not None:
        extra_ips = _unique(
            [ip for ip in _reachable(control_view.dns.addresses, config) if ip not in own_ips],
            max(0, config.max_endpoints - len(own_ips)),
        )
    more = await asyncio.gather(*(endpoint.measure(ip, plan) for ip in extra_ips))
    return Vantage(dns=dns_obs, endpoints=(*own, *more)), control_view, control_failure


async def measure_site(
    target: Target,
    config: ProbeConfig,
    control: ControlSource | None,
    *,
    is_online: Callable[[], Awaitable[bool]] | None = None,
) -> SiteMeasurement:
    """The whole site test: agent probes and control in parallel, then the verdict; then
    each redirect the page leads to, measured the same way, while every hop so far is ok
    (``agent.verdict.judge_chain`` says which URL is next)."""
    started = time.time()
    start = time.monotonic()
    agent_view, control_view, control_failure = await _measure_hop(target, config, control)
    online: bool | None = None
    if is_online is not None and _nothing_worked(agent_view) and control_view is None:
        online = await is_online()
    hops: list[Hop] = []
    while True:
        verdict, following = judge_chain(
            target,
            agent_view,
            control_view,
            hops,
            online=online,
            fingerprints=config.fingerprints,
        )
        if following is None:
            break
        # A control that failed once (cut for the agent, unreachable, refusing it) is not
        # asked again for the later hops: each would wait out the same timeout.
        asked = control if control_failure is None else None
        hop_agent, hop_control, hop_failure = await _measure_hop(following, config, asked)
        failure = hop_failure if asked is not None else control_failure
        hops.append(Hop(following.url, hop_agent, hop_control, failure))
    return SiteMeasurement(
        id=new_measurement_id(int(started * 1000)),
        url=target.url,
        started_ms=int(started * 1000),
        ms=round((time.monotonic() - start) * 1000, 1),
        agent=agent_view,
        control=control_view,
        control_failure=control_failure,
        online=online,
        verdict=verdict,
        hops=tuple(hops),
    )


def _nothing_worked(view: Vantage) -> bool:
    dns = view.dns
    dns_ok = dns.system.failure is None or any(p.failure is None for p in dns.public)
    dns_ok = dns_ok or (dns.system6 is not None and dns.system6.failure is None)
    tcp_ok = any(e.tcp.failure is None for e in view.endpoints)
    return not dns_ok and not tcp_ok

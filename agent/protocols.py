"""Agent protocol test: one target's protocol test through the far end, as a measurement.

Beside ``agent.site`` and ``agent.throttle``, at their level: it resolves the target (for
the QUIC Initials to the site itself) and the far end, runs the probe
(``agent.probes.protocols``) with the ticket the collector handed out, and decides the
verdict (``agent.verdict.protocols``). The result is a :class:`SiteMeasurement` of the
target whose ``protocols`` field holds the probes, printed, spooled, uploaded, stored and
reclassified as site tests are.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.model import failures
from agent.model.farend import FarendTicket
from agent.model.measurement import SiteMeasurement, Target, Vantage, new_measurement_id
from agent.model.observations import DNSObservation, SystemResolution
from agent.model.protocols import ProtocolObservation
from agent.net.dns import system_resolve
from agent.probes import protocols as probe
from agent.probes.protocols import ProtocolPlan, ProtocolPoint
from agent.verdict.protocols import decide_protocols

__all__ = ["FAREND_REFUSED_ADDRESS", "ProtocolConfig", "measure_protocols"]

FAREND_REFUSED_ADDRESS = "farend_address_refused"  # as agent.throttle says it


@dataclass(frozen=True)
class ProtocolConfig:
    benign_name: str
    plan: ProtocolPlan = field(default_factory=ProtocolPlan)
    dns_timeout: float = 2.0
    resolv_conf: str = "/etc/resolv.conf"
    # Where the far end may be, since the collector names it (agent.model.addresses.may_reach);
    # None: anywhere, for a collector the operator chose on the command line.
    may_reach: Callable[[str], bool] | None = None


async def _resolve(name: str, config: ProtocolConfig) -> SystemResolution | str:
    """An IP literal as is, or the system resolver's answer."""
    try:
        ip = str(ipaddress.ip_address(name))
    except ValueError:
        return await system_resolve(
            name, timeout=config.dns_timeout, resolv_conf=config.resolv_conf
        )
    return ip


def _first(answer: SystemResolution | str, allowed: Callable[[str], bool] | None) -> str | None:
    addresses = (answer,) if isinstance(answer, str) else answer.addresses
    usable = [a for a in addresses if allowed is None or allowed(a)]
    return usable[0] if usable else None


def _vantage(target: Target, answer: SystemResolution | str) -> Vantage:
    """The agent's view: how the target resolved (the site probes went there), no endpoints."""
    if isinstance(answer, SystemResolution):
        system = answer
    else:
        system = SystemResolution(target.host, "A", (), None, None, (answer,), None, 0.0, None)
    return Vantage(dns=DNSObservation(system=system, public=()), endpoints=())


async def observe(
    target: Target, ticket: FarendTicket | str, config: ProtocolConfig
) -> tuple[ProtocolObservation, SystemResolution | str]:
    site = await _resolve(target.host, config)
    site_ip = _first(site, None)
    name, benign = target.host, config.benign_name
    if not isinstance(ticket, FarendTicket):
        return ProtocolObservation(name, benign, failure=ticket or failures.NO_CONTROL), site
    far = await _resolve(ticket.host, config)
    if isinstance(far, SystemResolution) and far.failure is not None:
        return ProtocolObservation(name, benign, failure=far.failure), site
    far_ip = _first(far, config.may_reach)
    if far_ip is None:
        return ProtocolObservation(name, benign, failure=FAREND_REFUSED_ADDRESS), site
    point = ProtocolPoint(far_ip, ticket.udp_port, ticket.http_port, ticket.token)
    return await probe.measure(point, name, benign, site_ip, config.plan), site


async def measure_protocols(
    target: Target, ticket: FarendTicket | str, config: ProtocolConfig
) -> SiteMeasurement:
    """The protocol test of ``target``; ``ticket`` is the far end's, or why there is none."""
    started_ms = int(time.time() * 1000)
    start = time.monotonic()
    observation, site = await observe(target, ticket, config)
    return SiteMeasurement(
        id=new_measurement_id(started_ms),
        url=target.url,
        started_ms=started_ms,
        ms=round((time.monotonic() - start) * 1000, 1),
        agent=_vantage(target, site),
        control=None,
        control_failure=None,
        online=None,
        verdict=decide_protocols(observation),
        protocols=observation,
    )

"""Agent throttle test: one target's throttle test through the far end, as a measurement.

Beside ``agent.site`` (the site test) and at its level: it runs the probe
(``agent.probes.throttle``) with the ticket the collector handed out (``agent.api.farend``
fetches it; the caller passes it in, or the failure that kept it away) and decides the
verdict (``agent.verdict.throttle``). The result is a :class:`SiteMeasurement` of the target
whose ``throttle`` field holds the rounds, so it is printed, spooled, uploaded, stored and
reclassified as site tests are. An ``https`` target is tested by its SNI, an ``http`` one by
its Host header.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.model import failures
from agent.model.addresses import is_address
from agent.model.farend import FarendTicket
from agent.model.measurement import SiteMeasurement, Target, Vantage, new_measurement_id
from agent.model.observations import ThrottleObservation
from agent.net.dns import system_resolve
from agent.probes import throttle as probe
from agent.probes.throttle import FarendPoint, ThrottlePlan
from agent.verdict.throttle import decide_throttle

__all__ = ["FAREND_REFUSED_ADDRESS", "NO_NAME", "ThrottleConfig", "measure_throttle"]

# The far end's name resolved only to addresses the agent may not reach on the collector's say.
FAREND_REFUSED_ADDRESS = "farend_address_refused"
# A target that is an IP address: there is no name to put in the SNI or the Host.
NO_NAME = "throttle_no_name"


@dataclass(frozen=True)
class ThrottleConfig:
    benign_name: str
    plan: ThrottlePlan = field(default_factory=ThrottlePlan)
    dns_timeout: float = 2.0
    resolv_conf: str = "/etc/resolv.conf"
    # Where the far end may be, since the collector names it (agent.model.addresses.may_reach);
    # None: anywhere, for a collector the operator chose on the command line.
    may_reach: Callable[[str], bool] | None = None


async def _far_end_ip(ticket: FarendTicket, config: ThrottleConfig) -> tuple[str | None, str]:
    """The far end's address, or None and why there is none."""
    if is_address(ticket.host):
        addresses: tuple[str, ...] = (str(ipaddress.ip_address(ticket.host)),)
    else:
        resolved = await system_resolve(
            ticket.host, timeout=config.dns_timeout, resolv_conf=config.resolv_conf
        )
        if resolved.failure is not None:
            return None, resolved.failure
        addresses = resolved.addresses
    usable = [a for a in addresses if config.may_reach is None or config.may_reach(a)]
    return (usable[0], "") if usable else (None, FAREND_REFUSED_ADDRESS)


async def observe(
    target: Target, ticket: FarendTicket | str, config: ThrottleConfig
) -> ThrottleObservation:
    """The rounds for ``target``, or an observation saying why the test could not run."""
    trigger = "sni" if target.scheme == "https" else "host"
    if is_address(target.host):
        return ThrottleObservation(trigger, target.host, config.benign_name, failure=NO_NAME)
    if isinstance(ticket, FarendTicket):
        port = ticket.tls_port if trigger == "sni" else ticket.http_port
        ip, failure = await _far_end_ip(ticket, config)
        if ip is not None:
            point = FarendPoint(ip, port, ticket.token)
            return await probe.measure(point, trigger, target.host, config.benign_name, config.plan)
    else:
        failure = ticket or failures.NO_CONTROL
    return ThrottleObservation(trigger, target.host, config.benign_name, failure=failure)


async def measure_throttle(
    target: Target, ticket: FarendTicket | str, config: ThrottleConfig
) -> SiteMeasurement:
    """The throttle test of ``target``; ``ticket`` is the far end's, or why there is none."""
    started_ms = int(time.time() * 1000)
    start = time.monotonic()
    observation = await observe(target, ticket, config)
    return SiteMeasurement(
        id=new_measurement_id(started_ms),
        url=target.url,
        started_ms=started_ms,
        ms=round((time.monotonic() - start) * 1000, 1),
        agent=Vantage.unresolved(target.host),
        control=None,
        control_failure=None,
        online=None,
        verdict=decide_throttle(observation),
        throttle=observation,
    )

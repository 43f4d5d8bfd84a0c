"""Trace measurements for the collector's tests, built from ``agent.model.trace`` and judged by
``agent.verdict.trace`` as the agent judges them.

The path: the customer's own router at TTL 1 (a public address, hidden publicly only for
being first), the ISP's router in shared address space at TTL 2, a public router at TTL 3,
and at TTL 4 the ClientHello naming the site is reset where the benign one dies at the next
router. The injected reset carries IP TTL 62, the server's packets 60, and no genuine answer
follows: an in-path box after 198.51.100.249.
"""

from __future__ import annotations

import dataclasses

from agent.model.measurement import SiteMeasurement, Vantage, new_measurement_id
from agent.model.trace import (
    FULL_TTL,
    TraceAttempt,
    TraceObservation,
    TracePacket,
    TraceReference,
)
from agent.verdict.trace import decide_trace

__all__ = ["AFTER", "CPE", "ISP", "ROUTERS", "trace_measurement", "trace_observation"]

CPE, ISP, AFTER, BEYOND = "203.0.113.7", "100.64.0.1", "198.51.100.249", "198.51.100.250"
ROUTERS = (CPE, ISP, AFTER)
SERVER = "192.0.2.80"


def _hop(ttl: int, router: str) -> tuple[TraceAttempt, TraceAttempt]:
    return (
        TraceAttempt(ttl, True, "exceeded", router, ms=float(ttl)),
        TraceAttempt(ttl, False, "exceeded", router, ms=float(ttl)),
    )


def trace_observation(routers: tuple[str, ...] = ROUTERS) -> TraceObservation:
    """A trace that meets the censor one hop past ``routers``."""
    attempts: list[TraceAttempt] = []
    for ttl, router in enumerate(routers, 1):
        attempts += _hop(ttl, router)
    censor = len(routers) + 1
    attempts += [
        TraceAttempt(censor, True, "rst", ms=9.0),
        TraceAttempt(censor, False, "exceeded", BEYOND, ms=9.0),
        TraceAttempt(FULL_TTL, True, "rst", ms=12.0, packets=(TracePacket("rst", 62, 0, 11.0),)),
    ]
    return TraceObservation(
        trigger="sni",
        name="blocked.example",
        benign="example.org",
        address=SERVER,
        port=443,
        attempts=tuple(attempts),
        references=(TraceReference(SERVER, 80, TracePacket("synack", 60, 4321, 20.0)),),
        max_ttl=16,
        packets_sent=len(attempts),
    )


def trace_measurement(
    observation: TraceObservation | None = None, started_ms: int = 1_700_000_000_000
) -> SiteMeasurement:
    """A trace of https://blocked.example/ as the agent records it."""
    obs = observation or trace_observation()
    return SiteMeasurement(
        id=new_measurement_id(started_ms),
        url=f"https://{obs.name}/",
        started_ms=started_ms,
        ms=250.0,
        agent=Vantage.unresolved(obs.name),
        control=None,
        control_failure=None,
        online=None,
        verdict=decide_trace(obs),
        trace=obs,
    )


def at(m: SiteMeasurement, started_ms: int) -> SiteMeasurement:
    """``m`` measured at another time, with a fresh id."""
    return dataclasses.replace(m, id=new_measurement_id(started_ms), started_ms=started_ms)

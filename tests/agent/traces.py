"""Test factories for traces (``agent.model.trace``): attempts as the probe sends them (the
benign swap, then the trigger, at each TTL), the full-TTL last attempt, and a trace wrapped in
the measurement the agent spools.

The default path: the customer's router at TTL 1, the ISP's at TTL 2, a public router at TTL 3,
and the server 192.0.2.80 (2001:db8::80 over IPv6) behind them. Times are whole milliseconds,
so a wire round trip is exact. ``traces`` draws any well-typed trace, for properties.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from hypothesis import strategies as st

from agent.model import trace as t
from agent.model.measurement import SiteMeasurement, Vantage, Verdict, new_measurement_id
from agent.model.trace import TraceAttempt, TraceObservation, TracePacket, TraceReference
from agent.verdict.trace import decide_trace

__all__ = [
    "BEYOND",
    "BLOCKED",
    "REFERENCE",
    "ROUTERS",
    "SERVER",
    "SERVER6",
    "hops",
    "last",
    "measurement",
    "observation",
    "pair",
    "traces",
]

ROUTERS = ("203.0.113.1", "100.64.0.1", "198.51.100.3")
BEYOND = "198.51.100.9"  # the router one hop past the censor, where the benign packet dies
SERVER, SERVER6 = "192.0.2.80", "2001:db8::80"
REFERENCE = "198.51.100.200"  # a host behind the same routers (the collector)
BLOCKED = "blocked.example"


def pair(
    ttl: int,
    trigger: str,
    benign: str,
    *,
    router: str | None = None,
    fingerprint: str | None = None,
    benign_fingerprint: str | None = None,
) -> tuple[TraceAttempt, TraceAttempt]:
    """The benign swap and then the trigger at one TTL; ``router`` answers whichever of
    them died at a router (exceeded or unreachable)."""
    icmp = (t.EXCEEDED, t.UNREACHABLE)
    return (
        TraceAttempt(
            ttl,
            False,
            benign,
            router if benign in icmp else None,
            ms=float(ttl),
            status=200 if benign == t.DATA else None,
            fingerprint=benign_fingerprint,
        ),
        TraceAttempt(
            ttl,
            True,
            trigger,
            router if trigger in icmp else None,
            ms=float(ttl),
            status=200 if trigger == t.DATA else None,
            fingerprint=fingerprint,
        ),
    )


def hops(*routers: str | None) -> tuple[TraceAttempt, ...]:
    """Pairs at TTL 1, 2, ... that both died at ``routers`` (None: a silent router)."""
    found: list[TraceAttempt] = []
    for ttl, router in enumerate(routers, 1):
        if router is None:
            found += pair(ttl, t.SILENT, t.SILENT)
        else:
            found += pair(ttl, t.EXCEEDED, t.EXCEEDED, router=router)
    return tuple(found)


def last(
    reaction: str,
    *packets: TracePacket,
    status: int | None = None,
    fingerprint: str | None = None,
) -> TraceAttempt:
    """The trigger with the normal TTL, and the packets captured on its flow."""
    return TraceAttempt(
        t.FULL_TTL, True, reaction, ms=30.0, status=status, fingerprint=fingerprint, packets=packets
    )


def observation(
    *attempts: TraceAttempt | Iterable[TraceAttempt],
    trigger: str = "sni",
    address: str = SERVER,
    references: tuple[TraceReference, ...] = (),
    failure: str | None = None,
) -> TraceObservation:
    """A trace of ``blocked.example`` (of ``address`` for an ``ip`` trigger); each argument
    an attempt or a run of them (``pair``, ``hops``)."""
    flat: list[TraceAttempt] = []
    for item in attempts:
        flat += [item] if isinstance(item, TraceAttempt) else list(item)
    ip = trigger == "ip"
    return TraceObservation(
        trigger=trigger,
        name=address if ip else BLOCKED,
        benign=REFERENCE if ip else "example.com",
        address=address,
        port=443,
        attempts=tuple(flat),
        references=references,
        max_ttl=16,
        packets_sent=len(flat) + len(references),
        failure=failure,
    )


def measurement(obs: TraceObservation, verdict: Verdict | None = None) -> SiteMeasurement:
    """``obs`` as the measurement ``agent.trace.measure_trace`` makes of it."""
    started = 1_717_171_717_171
    return SiteMeasurement(
        id=new_measurement_id(started),
        url=f"https://{BLOCKED}/",
        started_ms=started,
        ms=2500.0,
        agent=Vantage.unresolved(BLOCKED),
        control=None,
        control_failure=None,
        online=None,
        verdict=decide_trace(obs) if verdict is None else verdict,
        trace=obs,
    )


# Any well-typed trace: reactions, TTLs (the full one too), routers, packets and references
# drawn freely, in any order.
_ADDRESSES = st.sampled_from([None, *ROUTERS, BEYOND, "2001:db8::1", "2001:db8:ffff::fe"])
_PACKETS = st.builds(
    TracePacket,
    st.sampled_from(t.PACKET_KINDS),
    st.integers(0, 255),
    st.none() | st.integers(0, 65535),
    st.integers(0, 5000).map(float),
)
_ATTEMPTS = st.builds(
    TraceAttempt,
    st.integers(1, 12) | st.just(t.FULL_TTL),
    st.booleans(),
    st.sampled_from(t.REACTIONS),
    _ADDRESSES,
    st.integers(0, 5000).map(float),
    st.none() | st.sampled_from([200, 403, 451]),
    st.none() | st.just("cp.b_nat_pak_isp_common_blockpage"),
    st.lists(_PACKETS, max_size=4).map(tuple),
)
_REFERENCES = st.builds(
    TraceReference,
    st.sampled_from([SERVER, REFERENCE]),
    st.sampled_from([80, 443]),
    st.none() | _PACKETS,
)


@st.composite
def traces(draw: st.DrawFn) -> TraceObservation:
    obs = observation(
        draw(st.lists(_ATTEMPTS, max_size=40)),
        trigger=draw(st.sampled_from(t.TRACE_TRIGGERS)),
        references=tuple(draw(st.lists(_REFERENCES, max_size=4))),
    )
    failure = draw(st.none() | st.just(t.UNAVAILABLE))
    return obs if failure is None else replace(obs, failure=failure)

"""Agent probe: the trace, where along the path a censor reacts (CenTrace-style).

For TTL = 1, 2, ... the benign swap and then the trigger go out, each on a fresh connection
(``agent.net.ttl``), while one capture (``agent.net.capture``) reads the routers' ICMP
errors and the packets on every flow. The trace stops at the first TTL where the trigger
meets what the benign does not (``agent.model.trace.censored``; a silence is asked again
before it counts, since routers drop ICMP too), or once the benign is answered by the host
itself and the trigger alike, or after ``max_ttl``. Then the trigger goes out once with the
normal TTL, and the capture keeps listening for ``settle`` seconds after its answer, for a
genuine answer behind an injected one. Last, two plain handshakes stand for genuine
packets: to the same address on the other web port, and to the reference address.

Bounded: at most ``2 * max_ttl + 4`` attempts plus the repeats of silent TTLs (each at most
once), each waiting at most ``window`` seconds. Returns an observation, never raises for the
network; without the capture (no ``CAP_NET_RAW``) it says why in ``failure``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from agent.model import trace as t
from agent.model.trace import TraceAttempt, TraceObservation, TracePacket, TraceReference
from agent.net import ttl as net
from agent.net.capture import FlowCapture, unavailable
from agent.net.errors import NETWORK_ERRORS, classify
from agent.net.hello import tls_record
from agent.net.http import request_bytes

__all__ = ["Inspector", "TracePlan", "measure", "trigger_payload"]

# Reads a data answer's first bytes: its HTTP status and the blockpage fingerprint it
# matches, if any (agent.trace passes the agent's fingerprints in).
Inspector = Callable[[bytes], tuple[int | None, str | None]]
MAX_PACKETS = 32  # captured packets kept for the last attempt
SILENT_HOPS = 5  # consecutive TTLs where nothing at all came back: the path has gone quiet
_OTHER_PORT = {443: 80, 80: 443}


@dataclass(frozen=True)
class TracePlan:
    trigger: str  # "sni", "host" or "ip"
    name: str  # the blocked name (sni/host), or the blocked address (ip)
    benign: str  # the swap's name (sni/host), or a benign address (ip)
    address: str  # the address to trace
    port: int
    path: str = "/"
    reference_address: str | None = None  # a host behind the same routers, for genuine packets
    max_ttl: int = 16
    window: float = 2.0  # how long one attempt waits for any reaction
    settle: float = 1.0  # how long the last attempt listens after its answer
    connect_timeout: float = 5.0


def trigger_payload(trigger: str, name: str, path: str = "/") -> bytes:
    """What goes out with the limited TTL: a ClientHello naming ``name``, or a request."""
    return tls_record(name) if trigger == "sni" else request_bytes(name, path)


class _Tracer:
    def __init__(self, plan: TracePlan, capture: FlowCapture, inspect: Inspector | None) -> None:
        self.plan, self.capture, self.inspect = plan, capture, inspect
        self.attempts: list[TraceAttempt] = []
        self.sent = 0
        self.grace = 0.1

    async def attempt(self, ttl: int, trigger: bool) -> tuple[TraceAttempt, net.Reaction]:
        plan = self.plan
        self.sent += 1
        if plan.trigger == "ip":
            address = plan.address if trigger else plan.benign
            reaction = await net.send_syn(
                self.capture, address, plan.port, ttl, plan.window, self.grace
            )
        else:
            name = plan.name if trigger else plan.benign
            payload = trigger_payload(plan.trigger, name, plan.path)
            reaction = await net.send_payload(
                self.capture, plan.address, plan.port, ttl, payload,
                window=plan.window, grace=self.grace, connect_timeout=plan.connect_timeout,
            )  # fmt: skip
        status, fingerprint = None, None
        if reaction.reaction == t.DATA and self.inspect is not None:
            status, fingerprint = self.inspect(reaction.answer)
        attempt = TraceAttempt(
            ttl, trigger, reaction.reaction, reaction.router, reaction.ms, status, fingerprint
        )
        self.attempts.append(attempt)
        return attempt, reaction

    async def pair(self, ttl: int) -> tuple[TraceAttempt, TraceAttempt]:
        benign, _ = await self.attempt(ttl, False)
        trigger, _ = await self.attempt(ttl, True)
        return trigger, benign

    async def walk(self) -> None:
        quiet = 0
        for ttl in range(1, self.plan.max_ttl + 1):
            trigger, benign = await self.pair(ttl)
            if t.censored(trigger, benign) and trigger.reaction == t.SILENT:
                trigger, benign = await self.pair(ttl)  # a silence counts only twice over
            if t.censored(trigger, benign):
                return
            if benign.reaction in t.ANSWERS and trigger.reaction == benign.reaction:
                return  # both reached the host: nothing stood between
            if benign.reaction == t.NO_CONNECTION or trigger.reaction == t.NO_CONNECTION:
                return
            quiet = quiet + 1 if benign.reaction == trigger.reaction == t.SILENT else 0
            if quiet >= SILENT_HOPS:
                return

    async def last(self) -> None:
        """The trigger with the normal TTL, and what came on its flow until it settled."""
        attempt, reaction = await self.attempt(t.FULL_TTL, True)
        if reaction.local_port:
            await asyncio.sleep(self.plan.settle)
        packets = tuple(
            TracePacket(
                p.kind, p.ttl, p.ip_id, max(0.0, round((p.at - reaction.sent_at) * 1000, 1))
            )
            for p in self.capture.packets(reaction.local_port)[:MAX_PACKETS]
            if p.kind in t.PACKET_KINDS
        )
        self.attempts[-1] = TraceAttempt(
            attempt.ttl, True, attempt.reaction, attempt.router, attempt.ms,
            attempt.status, attempt.fingerprint, packets,
        )  # fmt: skip

    async def references(self) -> tuple[TraceReference, ...]:
        plan, found = self.plan, []
        targets = [(plan.address, _OTHER_PORT.get(plan.port, 443))]
        if plan.reference_address is not None:
            targets.append((plan.reference_address, plan.port))
        for address, port in targets:
            self.sent += 1
            _, first = await net.reference(self.capture, address, port, plan.window)
            packet = None if first is None else TracePacket(first.kind, first.ttl, first.ip_id, 0)
            found.append(TraceReference(address, port, packet))
        return tuple(found)


async def measure(plan: TracePlan, inspect: Inspector | None = None) -> TraceObservation:
    """The trace of one trigger; ``failure`` says why it could not run, or broke off (the
    attempts made until then are kept)."""
    base = TraceObservation(
        plan.trigger, plan.name, plan.benign, plan.address, plan.port, max_ttl=plan.max_ttl
    )
    if unavailable() is not None:
        return _with(base, failure=t.UNAVAILABLE)
    addresses = {plan.address, plan.benign if plan.trigger == "ip" else plan.address}
    if plan.reference_address is not None:
        addresses.add(plan.reference_address)
    capture = FlowCapture(addresses, {plan.port, _OTHER_PORT.get(plan.port, 443)})
    tracer = _Tracer(plan, capture, inspect)
    try:
        await capture.start()
    except NETWORK_ERRORS:
        return _with(base, failure=t.UNAVAILABLE)
    failure: str | None = None
    references: tuple[TraceReference, ...] = ()
    try:
        tracer.grace = await _grace(plan)
        await tracer.walk()
        await tracer.last()
        references = await tracer.references()
    except NETWORK_ERRORS as exc:  # a socket the system would not open or bind: no route
        failure = classify(exc)
    finally:
        await capture.stop()
    return TraceObservation(
        plan.trigger, plan.name, plan.benign, plan.address, plan.port,
        tuple(tracer.attempts), references, plan.max_ttl, tracer.sent, failure,
    )  # fmt: skip


async def _grace(plan: TracePlan) -> float:
    """Four round trips, within [0.1, 1] s: how long a reset may trail an ICMP error."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    address = plan.benign if plan.trigger == "ip" else plan.address  # an ip trigger's may drop
    sock = await net.open_plain(address, plan.port, plan.connect_timeout)
    rtt = loop.time() - start
    if sock is not None:
        net.abort(sock)
    return min(1.0, max(0.1, 4 * rtt))


def _with(base: TraceObservation, failure: str) -> TraceObservation:
    return TraceObservation(
        base.trigger, base.name, base.benign, base.address, base.port,
        max_ttl=base.max_ttl, failure=failure,
    )  # fmt: skip

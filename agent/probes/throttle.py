"""Agent probe: the throttle test's rounds against the far end.

For one name: ``rounds`` times, a round naming the target and a round naming the benign
name, interleaved (T B B T T B) so that a link whose speed drifts slows both alike. A round
is a bounded download and a bounded upload (``agent.net.transfer``), each on a connection of
its own, as a throttler acts on connections. The name goes where the censor looks for it: in the TLS
SNI (and the Host inside) for ``sni``, in the plain HTTP Host header for ``host``. The far
end's certificate is not validated: the test is about what happens to the name on the way.
:class:`ThrottlePlan`'s defaults keep one test within about 4 MB and 15 s
(BENCHMARKS.md); the verdict is ``agent.verdict.throttle``'s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from agent.model.observations import ThrottleObservation, Transfer
from agent.net.tcp import Stream, connect
from agent.net.tls import handshake
from agent.net.transfer import UPLOAD_GRACE, download, upload

__all__ = ["TRIGGERS", "ThrottlePlan", "measure"]

TRIGGERS = ("sni", "host")


@dataclass(frozen=True)
class ThrottlePlan:
    rounds: int = 3  # of each name
    down_bytes: int = 384 * 1024
    up_bytes: int = 192 * 1024
    window: float = 1.2  # seconds of goodput measured per transfer, at most
    timeout: float = 10.0  # a connect or handshake, and each transfer on top of its window


@dataclass(frozen=True)
class FarendPoint:
    """Where the rounds go, and with what token."""

    ip: str
    port: int
    token: str


def _failed(up: bool, trigger: bool, connect_ms: float, failure: str | None) -> Transfer:
    return Transfer(up, trigger, connect_ms, None, None, 0, 0, 0, 0, None, failure)


async def _transfer(
    point: FarendPoint, name: str, tls: bool, up: bool, trigger: bool, plan: ThrottlePlan
) -> Transfer:
    tcp, opened = await connect(point.ip, point.port, timeout=plan.timeout)
    if opened is None:
        return _failed(up, trigger, tcp.ms, tcp.failure)
    stream: Stream = opened
    handshake_ms = None
    if tls:
        shake, secured = await handshake(opened, name, timeout=plan.timeout)
        if secured is None:
            return dataclasses.replace(
                _failed(up, trigger, tcp.ms, shake.failure), handshake_ms=shake.ms
            )
        stream, handshake_ms = secured, shake.ms
    move = upload if up else download
    size = plan.up_bytes if up else plan.down_bytes
    timeout = plan.window + UPLOAD_GRACE + plan.timeout
    seen = await move(stream, name, point.token, size, window=plan.window, timeout=timeout)
    return dataclasses.replace(
        seen, up=up, trigger=trigger, connect_ms=tcp.ms, handshake_ms=handshake_ms
    )


async def _retried(
    point: FarendPoint, name: str, tls: bool, up: bool, trigger: bool, plan: ThrottlePlan
) -> Transfer:
    """A transfer, made once more if the network failed it: on a lossy link a lost SYN or
    ClientHello is no finding. A refusal (a status) or a second failure stands."""
    seen = await _transfer(point, name, tls, up, trigger, plan)
    if seen.failure is not None and seen.status is None:
        seen = await _transfer(point, name, tls, up, trigger, plan)
    return seen


async def measure(
    point: FarendPoint, trigger: str, name: str, benign: str, plan: ThrottlePlan
) -> ThrottleObservation:
    """The rounds for ``name`` (and ``benign``) through the far end at ``point``."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS}, not {trigger!r}")
    tls = trigger == "sni"
    transfers: list[Transfer] = []
    for index in range(plan.rounds):
        # Trigger first, then benign first, and so on: whatever follows what (a connection
        # closing, a queue draining) falls on both alike.
        pair = ((True, name), (False, benign))
        for is_trigger, named in pair if index % 2 == 0 else pair[::-1]:
            for up in (False, True):
                transfers.append(await _retried(point, named, tls, up, is_trigger, plan))
    return ThrottleObservation(
        trigger=trigger,
        name=name,
        benign=benign,
        address=point.ip,
        port=point.port,
        transfers=tuple(transfers),
        window_ms=round(plan.window * 1000),
        down_size=plan.down_bytes,
        up_size=plan.up_bytes,
    )

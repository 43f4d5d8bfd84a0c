"""Agent net: one datagram sent and its answer awaited, over a socket of its own.

:func:`exchange` sends a payload from a fresh UDP socket, so that it is the first packet of
its flow, as a censor that inspects only a flow's first packet would need it to be; it
sends the same bytes again after each silent interval (as a QUIC client resends its
Initial), and reports the first datagram that comes back. An ICMP error is reported as
the failure it maps to (a port unreachable is ``connection_refused``): the packet reached
the host, which answered that nothing listens there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass

from agent.net.errors import capture
from agent.net.tcp import elapsed_ms

__all__ = ["DatagramResult", "exchange"]

MAX_ANSWER = 2048


@dataclass(frozen=True)
class DatagramResult:
    answer: bytes | None  # the first datagram back, or None
    ms: float  # from the first send to the answer (or to giving up)
    tries: int  # how many times the payload was sent
    failure: str | None  # an ICMP error or a local failure; silence is no failure


class _Receiver(asyncio.DatagramProtocol):
    """Resolves ``answer`` with the first datagram, or None on an ICMP error (``error``)."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self.error: OSError | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if not self.answer.done():
            self.answer.set_result(data[:MAX_ANSWER])

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done() and isinstance(exc, OSError):
            self.error = exc
            self.answer.set_result(None)


async def exchange(
    ip: str, port: int, payload: bytes, *, tries: int = 3, interval: float = 0.7
) -> DatagramResult:
    """Sends ``payload`` to ``ip``:``port`` up to ``tries`` times, ``interval`` s apart, and
    waits as long after the last send for the first datagram back."""
    family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    sent = 0
    answer: bytes | None = None
    transport: asyncio.DatagramTransport | None = None
    with capture() as outcome:
        # Connected: only the destination's datagrams come in, and ICMP errors surface.
        transport, receiver = await loop.create_datagram_endpoint(
            _Receiver, remote_addr=(ip, port), family=family
        )
        for _ in range(tries):
            transport.sendto(payload)
            sent += 1
            done, _pending = await asyncio.wait((receiver.answer,), timeout=interval)
            if done:
                answer = receiver.answer.result()
                if receiver.error is not None:
                    raise receiver.error
                break
    if transport is not None:
        transport.close()
    return DatagramResult(answer, elapsed_ms(start), sent, outcome.failure)

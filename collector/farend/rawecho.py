"""Collector far end: the TCP echo, for a connection that opens with no HTTP request.

The protocol test (``agent.probes.protocols``) opens a connection to the plain port and
sends an OpenVPN hard reset as its first bytes, as a VPN client would: no token can come
first without changing what a censor sees. So the connection is allowed by its source
address instead, which must hold a current UDP echo lease (``collector.farend.udp``, taken
with the agent's token a moment before), and is echoed at most :data:`MAX_ECHO` bytes within
:data:`ECHO_WINDOW` seconds, counted against that agent's daily bytes. TCP's handshake
proves the address, so the echo goes back to no one but who sent it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from collector.farend.limits import Allowance, Counts

__all__ = ["ECHO_WINDOW", "MAX_ECHO", "RawEcho"]

MAX_ECHO = 512
ECHO_WINDOW = 3.0


class RawEcho:
    """Echoes the first bytes of a leased address's non-HTTP connection."""

    def __init__(
        self, leased: Callable[[str], str | None], allowance: Allowance, count: Counts
    ) -> None:
        self.leased, self.allowance, self.count = leased, allowance, count

    async def serve(
        self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Echoes ``first`` and what follows it; the caller closes the connection."""
        peer = writer.get_extra_info("peername")
        agent = self.leased(str(peer[0])) if peer else None
        if agent is None:
            self.count.refused("token")
            return
        if not self.allowance.reserve(agent, 2 * MAX_ECHO):
            self.count.refused("cap")
            return
        moved = 0
        try:
            moved = await _echo(first, reader, writer)
        finally:
            self.allowance.settle(agent, 2 * MAX_ECHO, 2 * moved)
            self.count.moved("echo", 2 * moved)


async def _echo(first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    deadline = time.monotonic() + ECHO_WINDOW
    data, moved = first, 0
    try:
        while data and moved + len(data) <= MAX_ECHO:
            writer.write(data)
            await writer.drain()
            moved += len(data)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            async with asyncio.timeout(left):
                data = await reader.read(MAX_ECHO - moved)
    except (ConnectionError, TimeoutError):
        pass  # the agent left, or the window ended
    return moved

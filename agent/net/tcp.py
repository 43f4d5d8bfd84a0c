"""Agent net: a TCP connect, and the byte stream it opens.

:func:`connect` makes one connection attempt to an IP and port and reports how it
went. On success the caller also gets a :class:`TCPStream`, which the TLS primitive
wraps (on this same connection) and the HTTP primitive reads and writes. Streams
are thin async wrappers over a non-blocking socket rather than asyncio transports,
because asyncio's SSL layer reports a FIN during a handshake as a reset, and the
difference between ``eof_error`` and ``connection_reset`` is evidence.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Protocol

from agent.model.observations import TCPConnect
from agent.net.errors import capture

RECV_SIZE = 65536


class Stream(Protocol):
    """A connected byte stream: plain TCP or TLS on top of it."""

    async def send(self, data: bytes) -> None: ...

    async def recv(self, size: int = RECV_SIZE) -> bytes:
        """Up to ``size`` bytes; b"" once the peer has closed."""
        ...

    def close(self) -> None: ...


class TCPStream:
    """An open TCP connection on a non-blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._loop = asyncio.get_running_loop()

    async def send(self, data: bytes) -> None:
        await self._loop.sock_sendall(self.sock, data)

    async def recv(self, size: int = RECV_SIZE) -> bytes:
        return await self._loop.sock_recv(self.sock, size)

    def close(self) -> None:
        self.sock.close()


def elapsed_ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 1)


async def connect(
    ip: str, port: int, *, timeout: float = 5.0
) -> tuple[TCPConnect, TCPStream | None]:
    """One connection attempt; the stream is returned open only when it succeeded."""
    family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    with capture() as outcome:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (ip, port))
    observation = TCPConnect(ip=ip, port=port, ms=elapsed_ms(start), failure=outcome.failure)
    if outcome.failure is not None:
        sock.close()
        return observation, None
    return observation, TCPStream(sock)

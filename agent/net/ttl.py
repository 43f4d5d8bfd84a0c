"""Agent net: one TTL-limited attempt, the trace's primitive.

Either a SYN sent with IP TTL ``ttl`` (an ``ip`` trigger), or a connection opened with the
normal TTL on which one payload (a ClientHello, a request) then goes out with IP TTL
``ttl``. What came back is read off the socket (a SYN-ACK, a reset, a clean close, bytes)
and off the trace's capture (``agent.net.capture``: the ICMP error from the router where the
packet died). The socket is closed with a reset at the normal TTL afterwards, so the server
keeps no half-open connection and the next attempt starts clean.

Never raises for the network: every outcome is a :class:`Reaction`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from agent.model import trace as t
from agent.net.capture import Captured, FlowCapture
from agent.net.errors import NETWORK_ERRORS

__all__ = ["Reaction", "abort", "open_plain", "reference", "send_payload", "send_syn"]

READ_LIMIT = 16 * 1024  # bytes kept of an answer: a status line, a title, a fingerprint
READ_MORE = 0.5  # seconds to keep reading an answer after its first bytes
ICMP_LAG = 0.5  # how long the capture may trail the socket in filing a packet


@dataclass(frozen=True)
class Reaction:
    reaction: str  # one of agent.model.trace.REACTIONS
    router: str | None
    ms: float
    local_port: int
    answer: bytes = b""  # the first bytes of a data reaction
    sent_at: float = 0.0  # time.monotonic() when the packet went out


def _socket(address: str, ttl: int | None) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
    if ttl is not None:
        _set_ttl(sock, ttl)
    return sock


def _set_ttl(sock: socket.socket, ttl: int) -> None:
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)


def abort(sock: socket.socket) -> None:
    """Close with a reset at the normal TTL, so it reaches the server whatever the trace set.

    A cancelled ``sock_recv`` or ``sock_connect`` leaves the socket registered with the event
    loop until its callback runs; the next socket gets the same descriptor, and registering
    it would then fail (epoll says ENOENT). So the registrations go first."""
    loop = asyncio.get_running_loop()
    if sock.fileno() >= 0:
        loop.remove_reader(sock.fileno())
        loop.remove_writer(sock.fileno())
    with contextlib.suppress(OSError):
        _set_ttl(sock, t.FULL_TTL)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _icmp(capture: FlowCapture, port: int, since: float) -> Captured | None:
    return next(
        (
            p
            for p in capture.packets(port)
            if p.kind in ("exceeded", "unreachable") and p.at >= since
        ),
        None,
    )


def _ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 1)


async def _connect(sock: socket.socket, address: str, port: int) -> tuple[str, bytes]:
    """The SYN's answer, as the kernel's connect reports it."""
    try:
        await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except ConnectionRefusedError:
        return t.RESET, b""
    except OSError:
        # EHOSTUNREACH, ENETUNREACH: an ICMP error aborted the SYN (the capture says whose);
        # anything else is the kernel's own refusal, with no router to name.
        return t.UNREACHABLE, b""
    return t.SYN_ACK, b""


async def send_syn(
    capture: FlowCapture, address: str, port: int, ttl: int, window: float, grace: float
) -> Reaction:
    """A SYN with IP TTL ``ttl``: a SYN-ACK, a reset, or the router's ICMP error, whichever
    the socket or the capture sees first (the kernel may wait for a retransmission before
    it gives up on an IPv6 SYN)."""
    sock = _socket(address, ttl)
    local = sock.getsockname()[1]
    start = time.monotonic()
    try:
        connecting = asyncio.ensure_future(_connect(sock, address, port))
        reaction, _ = await _race(capture, connecting, local, start, window, grace)
    finally:
        abort(sock)
    icmp = _icmp(capture, local, start)
    if icmp is not None and reaction in (t.SILENT, t.UNREACHABLE):
        return Reaction(icmp.kind, icmp.source, _ms(start), local, sent_at=start)
    return Reaction(reaction, None, _ms(start), local, sent_at=start)


async def open_plain(address: str, port: int, timeout: float) -> socket.socket | None:
    sock = _socket(address, None)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except NETWORK_ERRORS:
        abort(sock)
        return None
    return sock


async def _read_answer(sock: socket.socket) -> tuple[str, bytes]:
    """What the socket says: bytes (and a little more of them), a clean close, or a reset."""
    loop = asyncio.get_running_loop()
    try:
        first = await loop.sock_recv(sock, READ_LIMIT)
    except ConnectionResetError:
        return t.RESET, b""
    except OSError:
        return t.SILENT, b""
    if not first:
        return t.FIN, b""
    answer = bytearray(first)
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(READ_MORE):
            while len(answer) < READ_LIMIT and (more := await loop.sock_recv(sock, READ_LIMIT)):
                answer += more
    return t.DATA, bytes(answer[:READ_LIMIT])


async def send_payload(
    capture: FlowCapture,
    address: str,
    port: int,
    ttl: int,
    payload: bytes,
    *,
    window: float,
    grace: float,
    connect_timeout: float,
) -> Reaction:
    """``payload`` with IP TTL ``ttl`` on a fresh connection opened with the normal TTL."""
    sock = await open_plain(address, port, connect_timeout)
    if sock is None:
        return Reaction(t.NO_CONNECTION, None, 0.0, 0)
    local = sock.getsockname()[1]
    start = time.monotonic()
    try:
        _set_ttl(sock, ttl)
        await asyncio.get_running_loop().sock_sendall(sock, payload)
        reading = asyncio.ensure_future(_read_answer(sock))
        reaction, answer = await _race(capture, reading, local, start, window, grace)
    except NETWORK_ERRORS:
        reaction, answer = t.RESET, b""
    finally:
        abort(sock)
    icmp = _icmp(capture, local, start)
    if reaction == t.SILENT and icmp is not None:
        return Reaction(icmp.kind, icmp.source, _ms(start), local, sent_at=start)
    router = icmp.source if icmp else None
    return Reaction(reaction, router, _ms(start), local, answer, sent_at=start)


async def _race(
    capture: FlowCapture,
    answer: asyncio.Future[tuple[str, bytes]],
    local: int,
    start: float,
    window: float,
    grace: float,
) -> tuple[str, bytes]:
    """The socket's ``answer``; an ICMP error ends the wait ``grace`` seconds later (an
    on-path injector's reset and the time-exceeded of a router behind it both come back for
    the same packet); silence after ``window``."""
    try:
        deadline = start + window
        while not answer.done() and time.monotonic() < deadline:
            seen = len(capture.packets(local))
            if _icmp(capture, local, start) is not None:
                await asyncio.wait({answer}, timeout=grace)
                break
            remaining = deadline - time.monotonic()
            waiter: asyncio.Future[Any] = asyncio.ensure_future(
                capture.wait(local, remaining, seen)
            )
            pending: set[asyncio.Future[Any]] = {answer, waiter}
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        return answer.result() if answer.done() else (t.SILENT, b"")
    finally:
        answer.cancel()


async def reference(
    capture: FlowCapture, address: str, port: int, timeout: float
) -> tuple[int, Captured | None]:
    """A plain handshake at the normal TTL: the first packet that came back for it (its
    SYN-ACK, or a reset), which stands for the genuine host's packets."""
    sock = _socket(address, t.FULL_TTL)
    local = sock.getsockname()[1]
    with contextlib.suppress(*NETWORK_ERRORS):
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, (address, port))
    abort(sock)
    packets = [p for p in capture.packets(local) if p.kind in ("synack", "rst")]
    if not packets:
        await capture.wait(local, ICMP_LAG, seen=len(capture.packets(local)))
        packets = [p for p in capture.packets(local) if p.kind in ("synack", "rst")]
    return local, packets[0] if packets else None

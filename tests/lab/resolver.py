"""Censor lab: the "public recursive resolver" of the lab's internet.

It forwards every query it gets (UDP and TCP) to the lab's authoritative
server and hands the answer back after a fixed delay. The delay stands for the
distance to a real anycast resolver: it is the head start that lets an on-path
injector, sitting closer to the client, answer first, as injectors do in the
wild.

Config: {"listen": "198.51.100.8", "port": 53, "upstream": "198.51.100.53",
"upstream_port": 53, "delay_ms": 25}
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, cast

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode

from tests.lab.service import Cleanup, run_service

UPSTREAM_TIMEOUT = 2.0
# Without EDNS a client only promises to take 512 bytes over UDP (RFC 1035).
CLASSIC_UDP_SIZE = 512
TCP_IDLE_TIMEOUT = 10.0
# A burst of queries can land while the loop is busy; the default buffer (~200 kB)
# overflowed at a few hundred queries in a burst, and a dropped query looks like censorship.
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024
SO_RCVBUFFORCE = 33  # Linux: like SO_RCVBUF, but root may exceed net.core.rmem_max


@dataclass(frozen=True)
class Forwarder:
    upstream: str
    upstream_port: int
    delay: float

    async def answer(self, query: dns.message.Message, over_tcp: bool) -> dns.message.Message:
        """The upstream's answer to ``query`` (SERVFAIL if it fails), due no earlier
        than ``delay`` after the query arrived."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.delay
        try:
            if over_tcp:
                reply = await dns.asyncquery.tcp(
                    query, self.upstream, timeout=UPSTREAM_TIMEOUT, port=self.upstream_port
                )
            else:
                # One socket per query: replies can only come back to the query they
                # belong to, and dnspython still checks the id and question.
                reply = await dns.asyncquery.udp(
                    query,
                    self.upstream,
                    timeout=UPSTREAM_TIMEOUT,
                    port=self.upstream_port,
                    ignore_unexpected=True,
                )
        except (dns.exception.DNSException, OSError, EOFError) as error:
            log(f"upstream failed for {describe(query)}: {error!r}")
            reply = dns.message.make_response(query)
            reply.set_rcode(dns.rcode.SERVFAIL)
        reply.flags |= dns.flags.RA
        await asyncio.sleep(max(0.0, due - loop.time()))
        return reply


def parse_query(wire: bytes) -> dns.message.Message | None:
    try:
        message = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError):
        return None
    # Answering a response would let two lab resolvers ping-pong forever.
    if message.flags & dns.flags.QR:
        return None
    return message


def grow_receive_buffer(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, UDP_RECEIVE_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)


def udp_limit(query: dns.message.Message) -> int:
    if query.edns >= 0:
        return max(query.payload, CLASSIC_UDP_SIZE)
    return CLASSIC_UDP_SIZE


def describe(query: dns.message.Message) -> str:
    question = query.question[0] if query.question else "(no question)"
    return f"id={query.id} {question}"


def log(text: str) -> None:
    print(f"resolver: {text}", file=sys.stderr, flush=True)


class Tasks:
    """Keeps the per-query tasks alive until done, and cancels them on stop."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class UdpFrontend(asyncio.DatagramProtocol):
    def __init__(self, forwarder: Forwarder, tasks: Tasks) -> None:
        self.forwarder = forwarder
        self.tasks = tasks
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        query = parse_query(data)
        if query is not None:
            self.tasks.spawn(self._reply(query, addr))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from clients that already left must not stop the resolver.
        log(f"udp error: {exc!r}")

    async def _reply(self, query: dns.message.Message, addr: tuple[str | Any, int]) -> None:
        reply = await self.forwarder.answer(query, over_tcp=False)
        wire = reply.to_wire(max_size=udp_limit(query), prefer_truncation=True)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)


class TcpFrontend:
    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            # Queries on one connection are answered in order, as simple stubs expect.
            while True:
                header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                (length,) = struct.unpack("!H", header)
                query = parse_query(await reader.readexactly(length))
                if query is None:
                    break
                reply = await self.forwarder.answer(query, over_tcp=True)
                writer.write(reply.to_wire(prepend_length=True))
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def start(config: dict[str, Any]) -> Cleanup:
    forwarder = Forwarder(
        upstream=str(config["upstream"]),
        upstream_port=int(config.get("upstream_port", 53)),
        delay=float(config.get("delay_ms", 25)) / 1000.0,
    )
    listen = str(config["listen"])
    port = int(config.get("port", 53))
    tasks = Tasks()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: UdpFrontend(forwarder, tasks), local_addr=(listen, port)
    )
    grow_receive_buffer(transport.get_extra_info("socket"))
    tcp = TcpFrontend(forwarder)
    server = await asyncio.start_server(
        lambda r, w: tasks.spawn(tcp.serve(r, w)), listen, port, reuse_address=True
    )

    async def cleanup() -> None:
        server.close()
        transport.close()
        await tasks.cancel_all()
        await server.wait_closed()

    return cleanup


if __name__ == "__main__":
    run_service(start)

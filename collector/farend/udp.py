"""Collector far end: the UDP echo, for enrolled agents only.

A source address leases the echo with a hello datagram carrying its token
(``agent.model.farend.UDP_HELLO``); for :data:`UDP_LEASE_S` seconds the far end then echoes
that address's datagrams, at most :data:`LEASE_PACKETS` of them and never larger than it was
sent, each counted against the agent's daily bytes. The lease also covers the address's other
ports (:meth:`Echo.leased`), so the protocol test can send each shaped packet as the first of
a flow of its own, from a fresh socket, and the TCP echo (``collector.farend.rawecho``) knows
whom to allow. Everything else is dropped unanswered:
an echo that answered anyone would reflect traffic at whoever a sender forged.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import cast

from agent.model.farend import MAX_DATAGRAM, UDP_HELLO, UDP_HELLO_OK, UDP_LEASE_S
from collector.farend.limits import Allowance, Counts
from collector.farend.tokens import TokenError, TokenSigner

__all__ = ["LEASE_PACKETS", "MAX_LEASES", "Echo"]

LEASE_PACKETS = 256
MAX_LEASES = 4096

Address = tuple[str, int]


@dataclass
class _Lease:
    agent: str
    until: float
    packets: int = 0


class Echo(asyncio.DatagramProtocol):
    def __init__(self, signer: TokenSigner, allowance: Allowance, count: Counts) -> None:
        self.signer, self.allowance, self.count = signer, allowance, count
        self.leases: dict[Address, _Lease] = {}
        self.by_ip: dict[str, _Lease] = {}  # the latest lease of each address, for any port
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        source = (str(addr[0]), int(addr[1]))
        now = time.monotonic()
        if data.startswith(UDP_HELLO):
            self._hello(data[len(UDP_HELLO) :], source, now)
            return
        lease = self.leases.get(source) or self.by_ip.get(source[0])
        if lease is None or lease.until < now or lease.packets >= LEASE_PACKETS:
            self.count.refused("udp")
            return
        if len(data) > MAX_DATAGRAM or not self.allowance.reserve(lease.agent, 2 * len(data)):
            self.count.refused("cap" if len(data) <= MAX_DATAGRAM else "udp")
            return
        lease.packets += 1
        self.count.moved("udp", 2 * len(data))
        self._send(data, source)

    def _hello(self, token: bytes, source: Address, now: float) -> None:
        try:
            agent = self.signer.verify(token.decode("ascii", errors="replace").strip())
        except TokenError:
            self.count.refused("token")
            return
        if source not in self.leases and len(self.leases) >= MAX_LEASES:
            self.leases = {a: lease for a, lease in self.leases.items() if lease.until >= now}
            self.by_ip = {ip: lease for ip, lease in self.by_ip.items() if lease.until >= now}
            if len(self.leases) >= MAX_LEASES:
                self.count.refused("busy")
                return
        self.leases[source] = self.by_ip[source[0]] = _Lease(agent, now + UDP_LEASE_S)
        self._send(UDP_HELLO_OK, source)

    def leased(self, ip: str) -> str | None:
        """The agent whose lease covers ``ip`` now, if any."""
        lease = self.by_ip.get(ip)
        return lease.agent if lease is not None and lease.until >= time.monotonic() else None

    def _send(self, data: bytes, destination: Address) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, destination)

"""Agent net: a capture of what comes back while a trace runs (scapy, on an AF_PACKET socket).

A trace needs two things the kernel keeps from a TCP socket: the ICMP time-exceeded a
router sends for a segment of an *established* connection (TCP queues it on the socket's
error queue only before the handshake completes, so ``IP_RECVERR`` suffices for a SYN but
not for a ClientHello or a request), and the IP TTL and IP ID of every packet on the flow,
including those that arrive after an injected reset has closed the socket (the genuine
server's answer, which tells an on-path injector from an in-path one). So one capture per
trace listens on the interface that routes to the target, behind a kernel filter (compiled
by libpcap) that passes only ICMP errors and TCP from the traced addresses, and files each
packet under the local port it concerns.

scapy is imported here, lazily, and only by the trace; opening the capture needs
``CAP_NET_RAW`` (:func:`unavailable` says why it cannot be opened). The sniffer runs on its
own thread; waiters on the event loop are woken with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Captured", "FlowCapture", "unavailable"]

MAX_PER_PORT = 64  # packets kept per local port: a trace attempt needs a handful
ICMP_TIME_EXCEEDED, ICMP_UNREACHABLE = 11, 3
ICMP6_UNREACHABLE, ICMP6_TIME_EXCEEDED = 1, 3
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
ETH_P_ALL = 0x0003


@dataclass(frozen=True)
class Captured:
    """One packet filed under a local port: an ICMP error about it, or TCP from the server."""

    kind: str  # "exceeded", "unreachable", or a TCP kind: "synack", "rst", "fin", "data"
    source: str  # the router (ICMP) or the server (TCP)
    ttl: int
    ip_id: int | None
    at: float  # time.monotonic() when the sniffer saw it


@dataclass
class _Port:
    packets: list[Captured] = field(default_factory=list)
    waiters: list[asyncio.Event] = field(default_factory=list)


def unavailable() -> str | None:
    """Why a capture cannot be opened here, in words; None when it can."""
    try:
        import scapy.arch.common  # noqa: F401
    except ImportError:
        return "scapy is not installed (pip install 'netsonde[raw]')"
    try:
        probe = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except PermissionError:
        return "it needs CAP_NET_RAW (root, or the systemd unit's AmbientCapabilities)"
    except OSError as exc:
        return f"a packet socket cannot be opened: {exc.strerror or exc}"
    probe.close()
    try:
        from scapy.libs.winpcapy import pcap_compile  # noqa: F401
    except (ImportError, OSError):
        return "libpcap is not installed (apt-get install libpcap0.8)"
    return None


def _bpf(addresses: Iterable[str]) -> str:
    hosts = " or ".join(f"src host {a}" for a in sorted(set(addresses)))
    icmp = f"(icmp and (icmp[0] == {ICMP_TIME_EXCEEDED} or icmp[0] == {ICMP_UNREACHABLE}))"
    icmp6 = f"(icmp6 and (ip6[40] == {ICMP6_UNREACHABLE} or ip6[40] == {ICMP6_TIME_EXCEEDED}))"
    return f"(tcp and ({hosts})) or {icmp} or {icmp6}"


def _route_iface(address: str) -> str:
    """The interface the kernel would send to ``address`` through, as scapy reads the routes."""
    from scapy.config import conf

    if ":" in address:
        conf.route6.resync()
        return str(conf.route6.route(address)[0])
    conf.route.resync()
    return str(conf.route.route(address)[0])


def _tcp_kind(flags: int, payload: int) -> str | None:
    if flags & _RST:
        return "rst"
    if flags & _SYN:
        return "synack" if flags & _ACK else None
    if payload:
        return "data"
    return "fin" if flags & _FIN else None


class FlowCapture:
    """Packets about flows to ``addresses``, filed by local port, while the capture runs."""

    def __init__(self, addresses: Iterable[str]) -> None:
        self.addresses = frozenset(addresses)
        self._ports: dict[int, _Port] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._sniffer: Any = None

    async def start(self) -> None:
        """Start listening; returns once the socket is open, so nothing sent after is missed."""
        # Loading the layers registers their dissectors: without them the frames stay raw.
        import scapy.layers.inet
        import scapy.layers.inet6
        import scapy.layers.l2  # noqa: F401
        from scapy.sendrecv import AsyncSniffer

        ready = threading.Event()
        iface = _route_iface(next(iter(sorted(self.addresses))))
        self._sniffer = AsyncSniffer(
            iface=iface,
            filter=_bpf(self.addresses),
            prn=self._on_packet,
            store=False,
            started_callback=ready.set,
        )
        self._sniffer.start()
        if not await asyncio.to_thread(ready.wait, 5.0):
            raise OSError("the capture did not start")

    async def stop(self) -> None:
        if self._sniffer is not None and self._sniffer.running:
            await asyncio.to_thread(self._sniffer.stop)

    def packets(self, port: int) -> list[Captured]:
        with self._lock:
            return list(self._ports.get(port, _Port()).packets)

    async def wait(self, port: int, timeout: float, seen: int = -1) -> bool:
        """Wait until more than ``seen`` packets are filed under ``port`` (by default: until
        one more is), or ``timeout``."""
        event = asyncio.Event()
        with self._lock:
            slot = self._ports.setdefault(port, _Port())
            if 0 <= seen < len(slot.packets):
                return True
            slot.waiters.append(event)
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._ports[port].waiters.remove(event)

    def _file(self, port: int, packet: Captured) -> None:
        with self._lock:
            slot = self._ports.setdefault(port, _Port())
            if len(slot.packets) < MAX_PER_PORT:
                slot.packets.append(packet)
            waiters = list(slot.waiters)
        for event in waiters:
            self._loop.call_soon_threadsafe(event.set)

    def _on_packet(self, frame: Any) -> None:
        filed = _dissect(frame, self.addresses)
        if filed is not None:
            self._file(*filed)


def _dissect(frame: Any, addresses: frozenset[str]) -> tuple[int, Captured] | None:
    """The local port a packet concerns and what it says, or None if it is not about a trace."""
    from scapy.layers.inet import ICMP, IP, TCP, IPerror, TCPerror
    from scapy.layers.inet6 import IPerror6, IPv6, _ICMPv6Error

    now = time.monotonic()
    if IP in frame:
        ip: Any = frame[IP]
        ttl, ip_id = int(ip.ttl), int(ip.id)
    elif IPv6 in frame:
        ip = frame[IPv6]
        ttl, ip_id = int(ip.hlim), None
    else:
        return None
    source = str(ip.src)
    if ICMP in frame and IPerror in frame and TCPerror in frame:
        exceeded = int(frame[ICMP].type) == ICMP_TIME_EXCEEDED
        return _icmp(exceeded, frame[IPerror], frame[TCPerror], addresses, source, now)
    if isinstance(ip.payload, _ICMPv6Error) and IPerror6 in frame and TCPerror in frame:
        exceeded = int(ip.payload.type) == ICMP6_TIME_EXCEEDED
        return _icmp(exceeded, frame[IPerror6], frame[TCPerror], addresses, source, now)
    if TCP in frame and source in addresses:
        tcp: Any = frame[TCP]
        kind_name = _tcp_kind(int(tcp.flags), len(bytes(tcp.payload)))
        if kind_name is None:
            return None
        return int(tcp.dport), Captured(kind_name, source, ttl, ip_id, now)
    return None


def _icmp(
    exceeded: bool, quoted: Any, tcp: Any, addresses: frozenset[str], router: str, now: float
) -> tuple[int, Captured] | None:
    """An ICMP error is filed under the source port of the segment it quotes, if that segment
    went to a traced address (another flow may use the same local port)."""
    if str(quoted.dst) not in addresses:
        return None
    kind = "exceeded" if exceeded else "unreachable"
    return int(tcp.sport), Captured(kind, router, 0, None, now)

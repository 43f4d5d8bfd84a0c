"""Agent net: what comes back while a trace runs, read off raw IP sockets and dissected with scapy.

A trace needs two things the kernel keeps from a TCP socket: the ICMP time-exceeded a
router sends for a segment of an *established* connection (TCP queues it on the socket's
error queue only before the handshake completes, so ``IP_RECVERR`` suffices for a SYN but
not for a ClientHello or a request), and the IP TTL and IP ID of every packet on the flow,
including those that arrive after an injected reset has closed the socket (the genuine
server's answer, which tells an on-path injector from an in-path one).

So a capture opens raw sockets of the families it traces, layer 3 only (the systemd unit
allows ``AF_INET`` and ``AF_INET6`` and ``CAP_NET_RAW``, never ``AF_PACKET``): one for ICMP
errors (ICMPv6: a kernel ``ICMP6_FILTER`` passes only unreachable and time-exceeded), one
for TCP behind a kernel BPF filter that passes only the traced addresses (IPv4) or the
traced ports (IPv6, whose raw sockets see no IP header: the hop limit comes as ancillary
data). Each packet is dissected with scapy, imported here lazily and only by the trace, and
filed under the local port it concerns. The sockets are read by the event loop
(``add_reader``); dissecting a packet takes well under a millisecond.
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Captured", "FlowCapture", "unavailable"]

MAX_PER_PORT = 64  # packets kept per local port: a trace attempt needs a handful
MAX_PORTS = 1024  # local ports filed: a trace uses one per attempt, at most ~160
ICMP_TIME_EXCEEDED, ICMP_UNREACHABLE = 11, 3
ICMP6_UNREACHABLE, ICMP6_TIME_EXCEEDED = 1, 3
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_SO_ATTACH_FILTER = 26
_ICMP6_FILTER = 1
_BPF_LD_W_ABS, _BPF_LD_H_ABS, _BPF_JEQ_K, _BPF_RET_K = 0x20, 0x28, 0x15, 0x06
_READ_SIZE = 65535


@dataclass(frozen=True)
class Captured:
    """One packet filed under a local port: an ICMP error about it, or TCP from the server."""

    kind: str  # "exceeded", "unreachable", or a TCP kind: "synack", "rst", "fin", "data"
    source: str  # the router (ICMP) or the server (TCP)
    ttl: int  # as received (0 for ICMP errors, where only the sender matters)
    ip_id: int | None
    at: float  # time.monotonic() when it was read


@dataclass
class _Port:
    packets: list[Captured] = field(default_factory=list)
    waiters: list[asyncio.Event] = field(default_factory=list)


def unavailable() -> str | None:
    """Why a capture cannot be opened here, in words; None when it can."""
    try:
        import scapy.layers.inet  # noqa: F401
    except ImportError:
        return "scapy is not installed (pip install 'netsonde[raw]')"
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except PermissionError:
        return "it needs CAP_NET_RAW (root, or the systemd unit's AmbientCapabilities)"
    except OSError as exc:
        return f"a raw socket cannot be opened: {exc.strerror or exc}"
    probe.close()
    return None


def _attach(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """A classic BPF program on ``sock``: the kernel drops what it does not accept."""
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


def _equals(load: tuple[int, int, int, int], values: list[int]) -> list[tuple[int, int, int, int]]:
    """``load``, then accept when the loaded value is one of ``values``, else drop."""
    count = len(values)
    jumps = [(_BPF_JEQ_K, count - i, 0, value) for i, value in enumerate(values)]
    return [load, *jumps, (_BPF_RET_K, 0, 0, 0), (_BPF_RET_K, 0, 0, _READ_SIZE)]


def _raw(family: int, proto: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_RAW, proto)
    sock.setblocking(False)
    return sock


def _sockets(addresses: frozenset[str], ports: frozenset[int]) -> list[tuple[str, socket.socket]]:
    v4 = sorted(int(ipaddress.IPv4Address(a)) for a in addresses if ":" not in a)
    v6 = any(":" in a for a in addresses)
    opened: list[tuple[str, socket.socket]] = []
    if v4:
        tcp4 = _raw(socket.AF_INET, socket.IPPROTO_TCP)
        _attach(tcp4, _equals((_BPF_LD_W_ABS, 0, 0, 12), v4))  # the IPv4 source address
        opened += [("icmp4", _raw(socket.AF_INET, socket.IPPROTO_ICMP)), ("tcp4", tcp4)]
    if v6:
        icmp6 = _raw(socket.AF_INET6, socket.IPPROTO_ICMPV6)
        blocked = [0xFFFFFFFF] * 8  # ICMP6_FILTER: a set bit blocks that type
        blocked[0] &= ~((1 << ICMP6_UNREACHABLE) | (1 << ICMP6_TIME_EXCEEDED))
        icmp6.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("8I", *blocked))
        tcp6 = _raw(socket.AF_INET6, socket.IPPROTO_TCP)
        tcp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        _attach(tcp6, _equals((_BPF_LD_H_ABS, 0, 0, 0), sorted(ports)))  # the TCP source port
        opened += [("icmp6", icmp6), ("tcp6", tcp6)]
    return opened


def _tcp_kind(flags: int, payload: int) -> str | None:
    if flags & _RST:
        return "rst"
    if flags & _SYN:
        return "synack" if flags & _ACK else None
    if payload:
        return "data"
    return "fin" if flags & _FIN else None


class FlowCapture:
    """Packets about flows to ``addresses`` (on ``ports``), filed by local port, while open."""

    def __init__(self, addresses: Iterable[str], ports: Iterable[int] = (80, 443)) -> None:
        self.addresses = frozenset(str(ipaddress.ip_address(a)) for a in addresses)
        self.ports = frozenset(ports)
        self._ports: dict[int, _Port] = {}
        self._loop = asyncio.get_running_loop()
        self._sockets: list[tuple[str, socket.socket]] = []

    async def start(self) -> None:
        """Open the sockets; packets that arrive from here on are filed."""
        import scapy.layers.inet
        import scapy.layers.inet6  # noqa: F401  # loaded now, not on the first packet

        self._sockets = _sockets(self.addresses, self.ports)
        for kind, sock in self._sockets:
            self._loop.add_reader(sock.fileno(), self._read, kind, sock)

    async def stop(self) -> None:
        for _, sock in self._sockets:
            self._loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets = []

    def packets(self, port: int) -> list[Captured]:
        return list(self._ports.get(port, _Port()).packets)

    async def wait(self, port: int, timeout: float, seen: int = -1) -> bool:
        """Wait until more than ``seen`` packets are filed under ``port`` (by default: until
        one more is), or ``timeout``."""
        slot = self._ports.setdefault(port, _Port())
        if 0 <= seen < len(slot.packets):
            return True
        event = asyncio.Event()
        slot.waiters.append(event)
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            slot.waiters.remove(event)

    def _read(self, kind: str, sock: socket.socket) -> None:
        try:
            data, ancillary, _, source = sock.recvmsg(_READ_SIZE, socket.CMSG_SPACE(4))
        except OSError:
            return
        filed = _dissect(kind, data, str(source[0]), _hop_limit(ancillary), self.addresses)
        if filed is None:
            return
        port, packet = filed
        if port not in self._ports and len(self._ports) >= MAX_PORTS:
            return  # a flood of forged ICMP errors must not grow this without end
        slot = self._ports.setdefault(port, _Port())
        if len(slot.packets) < MAX_PER_PORT:
            slot.packets.append(packet)
        for event in slot.waiters:
            event.set()


def _hop_limit(ancillary: list[tuple[int, int, bytes]]) -> int:
    for level, kind, value in ancillary:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
            return int(struct.unpack("i", value[:4])[0])
    return 0


def _dissect(
    kind: str, data: bytes, source: str, hop_limit: int, addresses: frozenset[str]
) -> tuple[int, Captured] | None:
    """The local port a packet concerns and what it says, or None if it is not about a trace."""
    from scapy.layers.inet import ICMP, IP, TCP, IPerror, TCPerror
    from scapy.layers.inet6 import IPerror6

    now = time.monotonic()
    if kind == "icmp6":
        if len(data) < 8 or data[0] not in (ICMP6_UNREACHABLE, ICMP6_TIME_EXCEEDED):
            return None
        quoted: Any = IPerror6(data[8:])
        exceeded = data[0] == ICMP6_TIME_EXCEEDED
        return _icmp(exceeded, quoted, quoted.getlayer(TCPerror), addresses, source, now)
    if kind == "tcp6":
        tcp6: Any = TCP(data)
        return _tcp(tcp6, source, hop_limit, None, addresses, now)
    packet: Any = IP(data)
    if kind == "icmp4":
        icmp: Any = packet.getlayer(ICMP)
        if icmp is None or int(icmp.type) not in (ICMP_TIME_EXCEEDED, ICMP_UNREACHABLE):
            return None
        exceeded = int(icmp.type) == ICMP_TIME_EXCEEDED
        inner = packet.getlayer(IPerror)
        return _icmp(exceeded, inner, packet.getlayer(TCPerror), addresses, str(packet.src), now)
    tcp = packet.getlayer(TCP)
    if tcp is None:
        return None
    return _tcp(tcp, str(packet.src), int(packet.ttl), int(packet.id), addresses, now)


def _tcp(
    tcp: Any, source: str, ttl: int, ip_id: int | None, addresses: frozenset[str], now: float
) -> tuple[int, Captured] | None:
    if source not in addresses:
        return None
    kind = _tcp_kind(int(tcp.flags), len(bytes(tcp.payload)))
    return None if kind is None else (int(tcp.dport), Captured(kind, source, ttl, ip_id, now))


def _icmp(
    exceeded: bool, quoted: Any, tcp: Any, addresses: frozenset[str], router: str, now: float
) -> tuple[int, Captured] | None:
    """An ICMP error is filed under the source port of the segment it quotes, if that segment
    went to a traced address (another flow may use the same local port)."""
    if quoted is None or tcp is None or str(quoted.dst) not in addresses:
        return None
    kind = "exceeded" if exceeded else "unreachable"
    return int(tcp.sport), Captured(kind, router, 0, None, now)

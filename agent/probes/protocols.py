"""Agent probe: the protocol test, shaped packets and their benign twins through the far end.

The far end (``collector.farend``) echoes datagrams from an address that leased the echo
with its token (``agent.model.farend.UDP_HELLO``), and echoes the first bytes of a TCP
connection from that address that opens with no HTTP request. So the test leases first,
from a socket of its own, and then sends every probe from a fresh socket: each shaped packet
is the first of its flow, as it is in the real protocol and as a censor that looks only at a
flow's first packet needs it. All probes run at once (a few datagrams each, about 2 s in all).

The shapes (``agent.model.protocols``): a real QUIC Initial (``agent.net.quic``), a WireGuard
handshake initiation (the 148 bytes of its wire layout, with random keys and MACs, which no
one on the path can tell from real ones), an OpenVPN hard reset without tls-auth (14 bytes,
as a client without a static key sends it; over TCP with its 2-byte length first). The
twins' first byte is kept out of every shape's (and out of ASCII letters, which would make
the far end read an HTTP request), so a twin never looks like anything.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import struct
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from agent.model.farend import UDP_HELLO, UDP_HELLO_OK
from agent.model.protocols import ProtocolObservation, ProtocolProbe
from agent.net.datagram import exchange
from agent.net.errors import capture
from agent.net.quic import initial
from agent.net.tcp import connect, elapsed_ms

__all__ = [
    "FAREND_SILENT",
    "ProtocolPlan",
    "ProtocolPoint",
    "measure",
    "openvpn_hard_reset",
    "twin",
    "wireguard_initiation",
]

# The far end did not answer the lease request: nothing else it echoes would come back.
FAREND_SILENT = "farend_udp_silent"
QUIC_PORT = 443
_OPENVPN_HARD_RESET_CLIENT_V2 = 7


@dataclass(frozen=True)
class ProtocolPlan:
    tries: int = 3  # sends of each datagram while it is not answered
    interval: float = 0.7  # seconds between them, and after the last
    timeout: float = 3.0  # a TCP connect, and the TCP echo after it


@dataclass(frozen=True)
class ProtocolPoint:
    """The far end: its address, UDP echo and plain TCP ports, and the agent's token."""

    ip: str
    udp_port: int
    tcp_port: int
    token: str


def wireguard_initiation() -> bytes:
    """A handshake initiation: type 1, 3 zero bytes, then sender index, ephemeral key,
    encrypted static key and timestamp, mac1 and mac2 (4+32+48+28+16+16 bytes)."""
    return b"\x01\x00\x00\x00" + os.urandom(144)


def openvpn_hard_reset(tcp: bool = False) -> bytes:
    """``P_CONTROL_HARD_RESET_CLIENT_V2`` with key id 0: opcode, session id, an empty ack
    array and message packet id 0; over TCP, after its 2-byte length."""
    packet = bytes([_OPENVPN_HARD_RESET_CLIENT_V2 << 3]) + os.urandom(8) + b"\x00" + bytes(4)
    return struct.pack("!H", len(packet)) + packet if tcp else packet


def twin(size: int) -> bytes:
    """``size`` random bytes whose first is 0x02..0x31: no QUIC (fixed bit clear), WireGuard
    (1), OpenVPN (0x38) or ASCII letter, whatever follows."""
    data = os.urandom(size)
    return bytes([0x02 + data[0] % 0x30]) + data[1:]


async def _udp(
    ip: str, port: int, payload: bytes, shape: str, *, random: bool, site: bool,
    plan: ProtocolPlan,
) -> ProtocolProbe:  # fmt: skip
    result = await exchange(ip, port, payload, tries=plan.tries, interval=plan.interval)
    # From the far end only its echo counts; a QUIC server answers with anything.
    answered = result.answer is not None and (site or result.answer == payload)
    return ProtocolProbe(
        shape, random, site, len(payload), answered, result.ms, result.tries, result.failure
    )


async def _tcp(
    point: ProtocolPoint, payload: bytes, random: bool, plan: ProtocolPlan
) -> ProtocolProbe:
    """``payload`` as a TCP connection's first bytes; answered if the far end echoes them."""
    start = time.monotonic()
    tcp, stream = await connect(point.ip, point.tcp_port, timeout=plan.timeout)
    got = b""
    failure = tcp.failure
    if stream is not None:
        try:
            with capture() as outcome:
                async with asyncio.timeout(plan.timeout):
                    await stream.send(payload)
                    while len(got) < len(payload):
                        chunk = await stream.recv()
                        if not chunk:
                            raise EOFError("closed before the echo")
                        got += chunk
        finally:
            stream.close()
        failure = outcome.failure
    answered = got[: len(payload)] == payload
    return ProtocolProbe(
        "openvpn-tcp", random, False, len(payload), answered, elapsed_ms(start), 1, failure
    )


async def _lease(point: ProtocolPoint, plan: ProtocolPlan) -> bool:
    hello = UDP_HELLO + point.token.encode("ascii")
    result = await exchange(
        point.ip, point.udp_port, hello, tries=plan.tries, interval=plan.interval
    )
    return result.answer == UDP_HELLO_OK


async def measure(
    point: ProtocolPoint, name: str, benign: str, site_ip: str | None, plan: ProtocolPlan
) -> ProtocolObservation:
    """Every shape and twin for ``name`` through the far end at ``point``, and the QUIC
    Initials to the site at ``site_ip`` (UDP 443) when the target resolved."""
    observed = ProtocolObservation(
        name, benign, point.ip, point.udp_port, point.tcp_port, site_address=site_ip
    )
    if not await _lease(point, plan):
        return dataclasses.replace(observed, failure=FAREND_SILENT)

    def far(shape: str, payload: bytes, random: bool = False) -> Awaitable[ProtocolProbe]:
        return _udp(point.ip, point.udp_port, payload, shape, random=random, site=False, plan=plan)

    quic = initial(name)
    wireguard, openvpn = wireguard_initiation(), openvpn_hard_reset()
    openvpn_tcp = openvpn_hard_reset(tcp=True)
    probes = [
        far("quic", quic), far("quic-benign", initial(benign)), far("quic", twin(len(quic)), True),
        far("wireguard", wireguard), far("wireguard", twin(len(wireguard)), True),
        far("openvpn-udp", openvpn), far("openvpn-udp", twin(len(openvpn)), True),
        _tcp(point, openvpn_tcp, False, plan), _tcp(point, twin(len(openvpn_tcp)), True, plan),
    ]  # fmt: skip
    if site_ip is not None:
        for shape, sni in (("quic", name), ("quic-benign", benign)):
            probes.append(
                _udp(site_ip, QUIC_PORT, initial(sni), shape, random=False, site=True, plan=plan)
            )
    return dataclasses.replace(observed, probes=tuple(await asyncio.gather(*probes)))

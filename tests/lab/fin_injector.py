"""Censor lab: an on-path FIN injector, the way some national firewalls end a connection.

Runs in a censor hop as ``python -m tests.lab.fin_injector CONFIG.json``::

    {"iface": "sub0", "sni": ["voanews.com"], "host": ["tribune.com.pk"]}

It watches the interface that faces the agent for the first data segment that names a
blocked domain: a ClientHello to port 443 carrying it (the SNI), or a request to port 80
with ``Host: name``. It answers that segment at once with a forged FIN+ACK from the
server's address, acknowledging exactly the client's data, so the client sees a clean
close (``recv`` returns nothing) right after it spoke: no RST, no timeout. The segment
itself never reaches the server: the hop's iptables drops it with the same string match
(``censors.hop_rules``), so the server cannot answer behind the censor's back. Forged
packets carry a fixed IP TTL and IP ID, as injected ones do in the wild.

iptables alone cannot forge a FIN (its REJECT sends a RST), and the lab has no NFQUEUE,
so the packet is read off an AF_PACKET socket, which sees it before netfilter drops it,
behind a kernel filter that passes only data segments to the web ports. Reading before the
router also means reading what it will not forward: a segment that arrives with TTL 1 ends
here in an ICMP time-exceeded, so the filter passes only TTL 2 and more, and the injector
sits where the DROP it pairs with sits (``tests.lab.positions``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scapy.utils import checksum

from tests.lab.injector import (
    DROP,
    ETH_HEADER,
    ETH_P_IP,
    FORGED_IP_ID,
    FORGED_TTL,
    IPV4_HEADER,
    attach_filter,
)
from tests.lab.service import announce_ready, load_config

TLS_PORT = 443
HTTP_PORT = 80
FIN_ACK = 0x11
RST_ACK = 0x14
WINDOW = 512
DONT_FRAGMENT = 0x4000
TCP_HEADER = struct.Struct("!HHIIBBHHH")
RECEIVE_BUFFER = 4 * 1024 * 1024
SO_RCVBUFFORCE = 33  # Linux: like SO_RCVBUF, but root may exceed net.core.rmem_max
POLL_SECONDS = 0.5  # how soon a stop request is seen
FRAME_LIMIT = 65536
ETH_P_ALL = 0x0003


@dataclass(frozen=True)
class Segment:
    """A TCP segment from the client, with what a forged reply needs of it."""

    client: bytes
    server: bytes
    client_port: int
    server_port: int
    seq: int
    ack: int
    payload: bytes
    ttl: int = 64  # the IP TTL it carried where it was read


def segment_filter(outgoing: bool = False) -> list[tuple[int, int, int, int]]:
    """Classic BPF for 'IPv4 TCP with data to port 443 or 80, first fragment': the segments
    a censor inspects. Everything else (handshakes, bare ACKs, other ports) stays in the
    kernel, so a burst of it cannot fill the socket's buffer and cost the injector the one
    segment it must answer. By default, segments arriving with a TTL the router forwards
    (2 or more), never ours; ``outgoing``: segments the router sends on, already forwarded."""
    pkttype = 0xFFFFF000 + 4  # SKF_AD_OFF + SKF_AD_PKTTYPE; 4 is PACKET_OUTGOING
    program = [
        (0x20, 0, 0, pkttype),  # ld pkttype
        (0x15, 0, DROP, 4) if outgoing else (0x15, DROP, 0, 4),  # jeq OUTGOING
        (0x28, 0, 0, 12),  # ldh ethertype
        (0x15, 0, DROP, ETH_P_IP),
    ]
    if not outgoing:
        program += [(0x30, 0, 0, 22), (0x25, 0, DROP, 1)]  # ldb ip ttl; jgt 1
    program += [
        (0x30, 0, 0, 23),  # ldb ip proto
        (0x15, 0, DROP, socket.IPPROTO_TCP),
        (0x28, 0, 0, 20),  # ldh flags and fragment offset
        (0x45, DROP, 0, 0x1FFF),  # jset: a later fragment has no TCP header
        (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf): IP header length
        (0x48, 0, 0, 16),  # ldh [x+16]: TCP destination port
        (0x15, 1, 0, TLS_PORT),  # jeq 443: go on
        (0x15, 0, DROP, HTTP_PORT),
        (0x50, 0, 0, 26),  # ldb [x+26]: TCP data offset, in its high nibble
        (0x74, 0, 0, 4),  # rsh 4
        (0x64, 0, 0, 2),  # lsh 2: TCP header length
        (0x0C, 0, 0, 0),  # add x: both headers
        (0x02, 0, 0, 0),  # st M[0]
        (0x61, 0, 0, 0),  # ldx M[0]
        (0x28, 0, 0, 16),  # ldh [16]: IP total length
        (0x1C, 0, 0, 0),  # sub x: the payload's length
        (0x15, DROP, 0, 0),  # jeq 0: nothing to inspect
        (0x06, 0, 0, 0x40000),  # ret: accept
        (0x06, 0, 0, 0),  # ret: drop
    ]
    last = len(program) - 1
    return [
        (code, last - i - 1 if jt == DROP else jt, last - i - 1 if jf == DROP else jf, k)
        for i, (code, jt, jf, k) in enumerate(program)
    ]


def parse_segment(frame: bytes) -> Segment | None:
    """The TCP segment an Ethernet frame carries, if it is one with data."""
    ip = frame[ETH_HEADER:]
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_TCP:
        return None
    if int.from_bytes(ip[6:8], "big") & 0x3FFF:
        return None
    tcp = ip[(ip[0] & 0x0F) * 4 : int.from_bytes(ip[2:4], "big")]
    if len(tcp) < 20:
        return None
    sport, dport, seq, ack = struct.unpack_from("!HHII", tcp)
    payload = tcp[(tcp[12] >> 4) * 4 :]
    if not payload:
        return None
    return Segment(ip[12:16], ip[16:20], sport, dport, seq, ack, payload, ip[8])


def is_targeted(segment: Segment, sni: frozenset[bytes], host: frozenset[bytes]) -> bool:
    """What the hop's iptables string match drops: the name anywhere in a segment to 443
    (where the ClientHello carries it), ``Host: name`` + CRLF in one to port 80."""
    if segment.server_port == TLS_PORT:
        return any(name in segment.payload for name in sni)
    if segment.server_port == HTTP_PORT:
        return any(b"Host: " + name + b"\r\n" in segment.payload for name in host)
    return False


def forge_fin(segment: Segment) -> bytes:
    """The server's FIN+ACK to ``segment``: its sequence number is what the client expects
    next, and it acknowledges every byte the client sent, so the client takes it as the
    server closing after reading the request."""
    return forge_reply(segment, FIN_ACK)


def forge_reply(segment: Segment, flags: int) -> bytes:
    """A segment from the server to the client with ``flags`` (FIN+ACK, RST+ACK), exactly
    in sequence after ``segment``, with the forger's fixed IP TTL and IP ID."""
    acked = (segment.seq + len(segment.payload)) & 0xFFFFFFFF
    header = TCP_HEADER.pack(
        segment.server_port,
        segment.client_port,
        segment.ack,
        acked,
        5 << 4,
        flags,
        WINDOW,
        0,
        0,
    )
    pseudo = segment.server + segment.client + struct.pack("!BBH", 0, socket.IPPROTO_TCP, 20)
    header = header[:16] + struct.pack("!H", checksum(pseudo + header)) + header[18:]
    ip = IPV4_HEADER.pack(
        0x45, 0, 40, FORGED_IP_ID, DONT_FRAGMENT, FORGED_TTL, socket.IPPROTO_TCP, 0,
        segment.server, segment.client,
    )  # fmt: skip
    return ip + header


class SegmentInjector:
    """A packet socket on ``iface`` behind a kernel filter for data segments to the web ports,
    and a raw socket that sends forged replies out of ``reply_iface``; :meth:`handle` decides.
    The FIN injector reads what arrives on the agent-facing side; the on-path tap
    (tests.lab.onpath_injector) what its hop sends on."""

    name = "injector"

    def __init__(self, iface: str, reply_iface: str, *, outgoing: bool = False) -> None:
        self.iface = iface
        self.out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.out.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        # Towards the client, whatever the routing table says about the spoofed source.
        self.out.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, reply_iface.encode())
        # A plain packet socket rather than scapy's sniffer: when the lab takes the link down
        # and up (a shutdown), the socket reports ENETDOWN once, and the loop must live on.
        # ETH_P_ALL to see what the device sends (only such a socket does); the filter keeps
        # IPv4.
        protocol = ETH_P_ALL if outgoing else ETH_P_IP
        self.listen = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(protocol))
        attach_filter(self.listen, segment_filter(outgoing=outgoing))
        # A busy lab can stall this process for a moment; what arrives meanwhile must wait.
        self.listen.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        self.listen.bind((iface, 0))
        self.listen.settimeout(POLL_SECONDS)

    def handle(self, frame: bytes, pkttype: int) -> None:
        raise NotImplementedError

    def send(self, packet: bytes, segment: Segment, what: str) -> None:
        """The forged ``packet`` to the client of ``segment``, logged."""
        client = socket.inet_ntoa(segment.client)
        try:
            self.out.sendto(packet, (client, 0))
        except OSError as error:
            print(f"{self.name}: cannot send to {client}: {error!r}", file=sys.stderr)
            return
        server = socket.inet_ntoa(segment.server)
        print(f"{self.name}: {what} to {client} from {server}:{segment.server_port}", flush=True)

    def serve(self, stopping: Callable[[], bool]) -> None:
        while not stopping():
            try:
                frame, address = self.listen.recvfrom(FRAME_LIMIT)
            except TimeoutError:
                continue
            except OSError as error:
                if error.errno in (errno.ENETDOWN, errno.ENXIO):
                    # The link went down (the lab's shutdown); it comes back on its own.
                    continue
                raise
            self.handle(frame, address[2])

    def close(self) -> None:
        self.listen.close()
        self.out.close()


class FinInjector(SegmentInjector):
    name = "fin_injector"

    def __init__(self, config: dict[str, Any]) -> None:
        iface = str(config["iface"])
        super().__init__(iface, iface)
        self.sni = frozenset(str(d).lower().encode() for d in config.get("sni", []))
        self.host = frozenset(str(d).lower().encode() for d in config.get("host", []))

    def handle(self, frame: bytes, pkttype: int = 0) -> None:
        segment = parse_segment(frame)
        # Frames queued before the filter was attached get here too: the TTL again.
        if segment is None or segment.ttl <= 1 or not is_targeted(segment, self.sni, self.host):
            return
        self.send(forge_fin(segment), segment, "FIN")


def run_injector(make: Callable[[dict[str, Any]], SegmentInjector]) -> int:
    """An injector's process: its config, a head start on the CPU, serve until SIGTERM."""
    config = load_config()
    # A censor's box is not starved by the lab's other daemons: its packet must beat the
    # client's timeout, or the server's answer, even on a busy test machine.
    with contextlib.suppress(PermissionError):
        os.nice(-10)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    injector = make(config)
    announce_ready()
    try:
        injector.serve(stop.is_set)
    finally:
        injector.close()
    return 0


def main() -> int:
    return run_injector(FinInjector)


if __name__ == "__main__":
    sys.exit(main())

"""Censor lab: an on-path DNS injector, the way national firewalls race resolvers.

Running in a censor hop, it watches the interface that faces the agent for UDP
queries to the public resolver about a blocked domain (or any subdomain), and
answers each one at once with a forged reply that claims to come from the
resolver. The real query is left alone, so the agent gets two replies: the
forged one first, the real one later. Like real injected packets, the forged
ones carry their own IP TTL and a fixed IP ID, which is what a detector can
key on. A query for AAAA gets the IPv6 answer.

Config: {"iface": "down0", "resolver": "198.51.100.8", "domains": ["signal.org"],
"answer": "203.0.113.66", "answer6": "2001:db8:4::cb00:7142"}
"""

from __future__ import annotations

import ctypes
import ipaddress
import signal
import socket
import struct
import sys
from dataclasses import dataclass
from typing import Any

from scapy.arch.linux import L2ListenSocket
from scapy.config import conf
from scapy.packet import Packet
from scapy.sendrecv import AsyncSniffer
from scapy.utils import checksum

from tests.lab.service import announce_ready, load_config

FORGED_TTL = 64
FORGED_IP_ID = 0x1337
ANSWER_TTL = 300
QTYPE_A = 1
QTYPE_AAAA = 28
QR_FLAG = 0x8000
OPCODE_MASK = 0x7800
RD_FLAG = 0x0100
RA_FLAG = 0x0080
ETH_P_IP = 0x0800
ETH_HEADER = 14
DNS_HEADER = 12
SO_ATTACH_FILTER = 26
IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
# Placeholder jump target in query_filter: the final 'drop' instruction.
DROP = -1


@dataclass(frozen=True)
class Query:
    querier: bytes
    sport: int
    dns: bytes
    qname: str
    question_end: int


def normalise(name: str) -> str:
    return name.lower().rstrip(".")


def is_targeted(qname: str, domains: frozenset[str]) -> bool:
    labels = normalise(qname).split(".")
    return any(".".join(labels[i:]) in domains for i in range(len(labels)))


def query_filter(resolver: str) -> list[tuple[int, int, int, int]]:
    """Classic BPF for 'IPv4 UDP to resolver:53, first fragment, TTL 2 or more (what the
    router forwards), not sent by us'.

    Scapy would compile a filter string with tcpdump/libpcap, which the lab
    does not have, and without any kernel filter every web packet of the agent
    would go through Python, enough to make the injector lose the race.
    """
    # Ancillary load of the packet type (SKF_AD_OFF + SKF_AD_PKTTYPE); 4 is PACKET_OUTGOING.
    pkttype = 0xFFFFF000 + 4
    dst = int(ipaddress.IPv4Address(resolver))
    program = [
        (0x20, 0, 0, pkttype),  # ld pkttype
        (0x15, DROP, 0, 4),  # jeq OUTGOING
        (0x28, 0, 0, 12),  # ldh ethertype
        (0x15, 0, DROP, ETH_P_IP),
        # A query that arrives with TTL 1 ends here in a time-exceeded: the injector answers
        # only what the router forwards, so it sits where a trace finds the router.
        (0x30, 0, 0, 22),  # ldb ip ttl
        (0x25, 0, DROP, 1),  # jgt 1
        (0x30, 0, 0, 23),  # ldb ip proto
        (0x15, 0, DROP, socket.IPPROTO_UDP),
        (0x20, 0, 0, 30),  # ld ip dst
        (0x15, 0, DROP, dst),
        (0x28, 0, 0, 20),  # ldh flags and fragment offset
        (0x45, DROP, 0, 0x1FFF),  # jset: a later fragment has no UDP header
        (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf): IP header length
        (0x48, 0, 0, 16),  # ldh [x+16]: UDP destination port
        (0x15, 0, DROP, 53),
        (0x06, 0, 0, 0x40000),  # ret: accept
        (0x06, 0, 0, 0),  # ret: drop
    ]
    last = len(program) - 1
    # Jumps are relative to the next instruction; resolve the DROP label into offsets.
    return [
        (code, last - i - 1 if jt == DROP else jt, last - i - 1 if jf == DROP else jf, k)
        for i, (code, jt, jf, k) in enumerate(program)
    ]


def attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    insns = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buffer = ctypes.create_string_buffer(insns)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def read_question(dns: bytes) -> tuple[str, int] | None:
    """The first question's name and the offset just past that question."""
    labels = []
    offset = DNS_HEADER
    while offset < len(dns) and dns[offset] != 0:
        # A query has nothing earlier to point at, so a compression pointer means garbage.
        if dns[offset] & 0xC0:
            return None
        labels.append(dns[offset + 1 : offset + 1 + dns[offset]].decode("ascii", "replace"))
        offset += 1 + dns[offset]
    offset += 5  # root label, qtype, qclass
    if offset > len(dns):
        return None
    return ".".join(labels), offset


def parse_query(frame: bytes, resolver: bytes) -> Query | None:
    """The DNS query to ``resolver`` carried by an Ethernet frame, if that is what it is.

    Byte offsets rather than scapy dissection: every query to the resolver gets
    here, and dissecting each one (~0.6 ms) let a burst of untargeted queries
    delay a targeted one past the resolver's answer.
    """
    ip = frame[ETH_HEADER:]
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP or ip[16:20] != resolver:
        return None
    if ip[8] <= 1:  # the router answers it with a time-exceeded, and forwards nothing
        return None
    # More-fragments or an offset: a fragment may not hold the whole question.
    if int.from_bytes(ip[6:8], "big") & 0x3FFF:
        return None
    udp = ip[(ip[0] & 0x0F) * 4 : int.from_bytes(ip[2:4], "big")]
    if len(udp) < 8 or int.from_bytes(udp[2:4], "big") != 53:
        return None
    dns = udp[8 : int.from_bytes(udp[4:6], "big")]
    if len(dns) < DNS_HEADER or dns[2] & 0x80 or int.from_bytes(dns[4:6], "big") != 1:
        return None
    question = read_question(dns)
    if question is None:
        return None
    qname, end = question
    return Query(ip[12:16], int.from_bytes(udp[0:2], "big"), dns, qname, end)


def forge_reply(query: Query, answer: bytes, answer6: bytes = b"") -> bytes:
    """The DNS reply to ``query``: question copied, one A record if it asked for A, one AAAA
    record if it asked for AAAA and there is an IPv6 answer."""
    qid, flags = struct.unpack_from("!HH", query.dns)
    (qtype,) = struct.unpack_from("!H", query.dns, query.question_end - 4)
    record = b""
    rdata = {QTYPE_A: answer, QTYPE_AAAA: answer6}.get(qtype, b"")
    if rdata:
        # 0xC00C points back at the question's name, as resolvers compress it.
        record = struct.pack("!HHHIH", 0xC00C, qtype, 1, ANSWER_TTL, len(rdata)) + rdata
    reply_flags = QR_FLAG | (flags & (OPCODE_MASK | RD_FLAG)) | RA_FLAG
    header = struct.pack("!6H", qid, reply_flags, 1, 1 if record else 0, 0, 0)
    return header + query.dns[DNS_HEADER : query.question_end] + record


def udp_packet(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4/UDP packet with our fingerprint (TTL, IP ID) and a valid UDP checksum.

    Built by hand: layering it with scapy costs ~2 ms a packet, which is enough
    to lose the race against the resolver when the agent sends a burst of queries.
    """
    length = 8 + len(payload)
    pseudo_header = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
    udp = struct.pack("!HHHH", sport, dport, length, 0) + payload
    # In UDP a zero checksum means "none", so a computed zero is sent as all ones.
    udp_checksum = checksum(pseudo_header + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", udp_checksum) + udp[8:]
    # The kernel always fills in the IP header checksum of IP_HDRINCL packets.
    ip = IPV4_HEADER.pack(0x45, 0, 20 + length, FORGED_IP_ID, 0, FORGED_TTL, 17, 0, src, dst)
    return ip + udp


class Injector:
    def __init__(self, config: dict[str, Any]) -> None:
        self.iface = str(config["iface"])
        self.resolver = socket.inet_aton(str(config["resolver"]))
        self.domains = frozenset(normalise(str(d)) for d in config["domains"])
        self.answer = socket.inet_aton(str(config["answer"]))
        answer6 = config.get("answer6")
        self.answer6 = socket.inet_pton(socket.AF_INET6, str(answer6)) if answer6 else b""
        # The kernel routes and resolves the next hop itself; IP_HDRINCL keeps our
        # spoofed source, TTL and IP ID exactly as forged.
        self.out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.out.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        self.out.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.iface.encode())
        self.listen = L2ListenSocket(iface=self.iface, type=ETH_P_IP, promisc=False)
        attach_filter(self.listen.ins, query_filter(str(config["resolver"])))
        # Hand frames over undissected: parse_query reads the few bytes it needs.
        self.listen.LL = conf.raw_layer

    def handle(self, packet: Packet) -> None:
        # Frames queued before the kernel filter was attached get here too: re-check all.
        query = parse_query(bytes(packet.original), self.resolver)
        if query is None or not is_targeted(query.qname, self.domains):
            return
        querier = socket.inet_ntoa(query.querier)
        forged = udp_packet(
            self.resolver,
            query.querier,
            53,
            query.sport,
            forge_reply(query, self.answer, self.answer6),
        )
        try:
            self.out.sendto(forged, (querier, 0))
        except OSError as error:
            print(f"injector: cannot send to {querier}: {error!r}", file=sys.stderr)
            return
        print(f"injector: forged {query.qname} for {querier}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.listen.close()
        self.out.close()


def main() -> int:
    config = load_config()
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    # Blocked before the sniffer thread exists, so only sigtimedwait below sees them.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    injector = Injector(config)
    sniffer = AsyncSniffer(
        opened_socket=injector.listen,
        store=False,
        prn=injector.handle,
        started_callback=announce_ready,
    )
    sniffer.start()
    try:
        while signal.sigtimedwait(stop_signals, 0.5) is None:
            if sniffer.thread is None or not sniffer.thread.is_alive():
                print(f"injector: sniffer died: {sniffer.exception!r}", file=sys.stderr)
                return 1
        sniffer.stop()
    finally:
        injector.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Censor lab: an on-path DNS injector, the way national firewalls race resolvers.

Running in a censor hop, it watches the interface that faces the agent for UDP
queries to the public resolver about a blocked domain (or any subdomain), and
answers each one at once with a forged reply that claims to come from the
resolver. The real query is left alone, so the agent gets two replies: the
forged one first, the real one later. Like real injected packets, the forged
ones carry their own IP TTL and a fixed IP ID, which is what a detector can
key on.

Config: {"iface": "down0", "resolver": "198.51.100.8", "domains": ["signal.org"],
"answer": "203.0.113.66"}
"""

from __future__ import annotations

import ctypes
import ipaddress
import signal
import socket
import struct
import sys
from typing import Any

from scapy.config import conf
from scapy.layers.dns import DNS, DNSRR
from scapy.layers.inet import IP, UDP
from scapy.packet import Packet
from scapy.sendrecv import AsyncSniffer

from tests.lab.service import announce_ready, load_config

FORGED_TTL = 64
FORGED_IP_ID = 0x1337
ANSWER_TTL = 300
QTYPE_A = 1
START_TIMEOUT = 10.0
ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
# Placeholder jump target in query_filter: the final 'drop' instruction.
DROP = -1


def normalise(name: str) -> str:
    return name.lower().rstrip(".")


def is_targeted(qname: str, domains: frozenset[str]) -> bool:
    labels = normalise(qname).split(".")
    return any(".".join(labels[i:]) in domains for i in range(len(labels)))


def query_filter(resolver: str) -> list[tuple[int, int, int, int]]:
    """Classic BPF for 'IPv4 UDP to resolver:53, first fragment, not sent by us'.

    Scapy would compile a filter string with tcpdump/libpcap, which the lab
    does not have, and without any kernel filter the sniffer would dissect
    every web packet of the agent in Python and could fall behind the race.
    """
    # Ancillary load of the packet type (SKF_AD_OFF + SKF_AD_PKTTYPE); 4 is PACKET_OUTGOING.
    pkttype = 0xFFFFF000 + 4
    dst = int(ipaddress.IPv4Address(resolver))
    program = [
        (0x20, 0, 0, pkttype),  # ld pkttype
        (0x15, DROP, 0, 4),  # jeq OUTGOING
        (0x28, 0, 0, 12),  # ldh ethertype
        (0x15, 0, DROP, ETH_P_IP),
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


class Injector:
    def __init__(self, config: dict[str, Any]) -> None:
        self.iface = str(config["iface"])
        self.resolver = str(config["resolver"])
        self.domains = frozenset(normalise(str(d)) for d in config["domains"])
        self.answer = str(config["answer"])
        # The kernel routes and resolves the next hop itself; IP_HDRINCL keeps our
        # spoofed source, TTL and IP ID exactly as forged.
        self.out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.out.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        self.out.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.iface.encode())
        self.listen = conf.L2listen(iface=self.iface, type=ETH_P_IP, promisc=False)
        attach_filter(self.listen.ins, query_filter(self.resolver))

    def wanted(self, packet: Packet) -> bool:
        # Frames queued before the kernel filter was attached get here too.
        return bool(
            IP in packet
            and UDP in packet
            and DNS in packet
            and packet[IP].dst == self.resolver
            and packet[UDP].dport == 53
            and packet[DNS].qr == 0
            and packet[DNS].qdcount == 1
            and packet[DNS].qd
        )

    def forge(self, query: Packet) -> bytes:
        dns = query[DNS]
        question = dns.qd[0]
        answers = []
        if question.qtype == QTYPE_A:
            answers = [DNSRR(rrname=question.qname, type="A", ttl=ANSWER_TTL, rdata=self.answer)]
        reply = (
            IP(src=self.resolver, dst=query[IP].src, ttl=FORGED_TTL, id=FORGED_IP_ID)
            / UDP(sport=53, dport=query[UDP].sport)
            / DNS(id=dns.id, qr=1, opcode=dns.opcode, rd=dns.rd, ra=1, qd=question, an=answers)
        )
        wire: bytes = bytes(reply)
        return wire

    def handle(self, packet: Packet) -> None:
        question = packet[DNS].qd[0]
        qname = question.qname.decode("ascii", "replace")
        if not is_targeted(qname, self.domains):
            return
        try:
            self.out.sendto(self.forge(packet), (packet[IP].src, 0))
        except OSError as error:
            print(f"injector: cannot send to {packet[IP].src}: {error!r}", file=sys.stderr)
            return
        print(f"injector: forged {qname} for {packet[IP].src}", file=sys.stderr, flush=True)

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
        lfilter=injector.wanted,
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

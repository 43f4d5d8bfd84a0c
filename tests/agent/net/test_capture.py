"""What the trace's capture (``agent.net.capture``) makes of a packet, on packets built with
scapy: ICMP errors filed under the source port of the segment they quote, only when it went to
a traced address (IPv4 with its IP header, IPv6 without, as raw sockets deliver them); TCP from
a traced address with its TTL and IP ID; the kernel BPF filter's jumps; and the TCP kinds."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6TimeExceeded, IPv6
from scapy.packet import Packet

from agent.net.capture import (
    _BPF_JEQ_K,
    _BPF_LD_H_ABS,
    _BPF_LD_W_ABS,
    _BPF_RET_K,
    _READ_SIZE,
    Captured,
    _dissect,
    _equals,
    _tcp_kind,
)

LOCAL, SERVER, OTHER, ROUTER = "10.0.0.2", "192.0.2.80", "192.0.2.99", "198.51.100.1"
LOCAL6, SERVER6, OTHER6, ROUTER6 = "2001:db8::2", "2001:db8::80", "2001:db8::99", "2001:db8:1::1"
TRACED = frozenset({SERVER, SERVER6})
PORT = 40123


def _icmp4(kind: int, dst: str, quote: int | None = None, inner: Packet | None = None) -> bytes:
    segment = inner if inner is not None else TCP(sport=PORT, dport=443, flags="PA") / (b"x" * 80)
    quoted = bytes(IP(src=LOCAL, dst=dst, ttl=1) / segment)
    # Routers quote the IP header and at least 8 bytes of what it carried (RFC 792).
    quoted = quoted if quote is None else quoted[:quote]
    return bytes(IP(src=ROUTER, dst=LOCAL, ttl=250) / ICMP(type=kind, code=0) / quoted)


def _icmp6(message: Packet, dst: str) -> bytes:
    # A raw ICMPv6 socket delivers the message without the IPv6 header; the checksums are left
    # zero, as no IPv6 header is there to compute them over.
    quoted = IPv6(src=LOCAL6, dst=dst, hlim=1) / TCP(sport=PORT, dport=443, flags="PA", chksum=0)
    return bytes(message / quoted)


def _dissected(kind: str, data: bytes, source: str, hop_limit: int = 0) -> tuple[int, Captured]:
    found = _dissect(kind, data, source, hop_limit, TRACED)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("icmp_type", "kind"), [(11, "exceeded"), (3, "unreachable")], ids=["exceeded", "unreachable"]
)
@pytest.mark.parametrize("quote", [None, 28], ids=["whole", "rfc792-8-bytes"])
def test_an_ipv4_icmp_error_is_filed_under_the_quoted_source_port(
    icmp_type: int, kind: str, quote: int | None
) -> None:
    port, captured = _dissected("icmp4", _icmp4(icmp_type, SERVER, quote), ROUTER)
    assert port == PORT
    assert (captured.kind, captured.source, captured.ttl, captured.ip_id) == (kind, ROUTER, 0, None)
    assert captured.at > 0


def test_an_icmp_error_about_another_address_is_not_the_traces() -> None:
    assert _dissect("icmp4", _icmp4(11, OTHER), ROUTER, 0, TRACED) is None
    assert (
        _dissect("icmp6", _icmp6(ICMPv6TimeExceeded(cksum=0), OTHER6), ROUTER6, 0, TRACED) is None
    )


def test_icmp_that_is_no_error_about_tcp_is_ignored() -> None:
    echo = bytes(IP(src=ROUTER, dst=LOCAL) / ICMP(type=0) / b"ping")
    assert _dissect("icmp4", echo, ROUTER, 0, TRACED) is None
    udp = UDP(sport=PORT, dport=53) / b"q"
    assert _dissect("icmp4", _icmp4(11, SERVER, inner=udp), ROUTER, 0, TRACED) is None
    # A redirect (5) quotes a packet too, but says nothing about where it died.
    assert _dissect("icmp4", _icmp4(5, SERVER), ROUTER, 0, TRACED) is None
    reply = bytes(ICMPv6EchoReply(cksum=0))
    assert _dissect("icmp6", reply, ROUTER6, 0, TRACED) is None
    assert _dissect("icmp6", b"\x03\x00", ROUTER6, 0, TRACED) is None  # too short


@pytest.mark.parametrize(
    ("message", "kind"),
    [(ICMPv6TimeExceeded(cksum=0), "exceeded"), (ICMPv6DestUnreach(cksum=0), "unreachable")],
    ids=["exceeded", "unreachable"],
)
def test_an_ipv6_icmp_error_is_filed_under_the_quoted_source_port(
    message: Packet, kind: str
) -> None:
    data = _icmp6(message, SERVER6)
    assert data[0] in (1, 3)  # the ICMPv6 type first: no IPv6 header before it
    port, captured = _dissected("icmp6", data, ROUTER6)
    assert port == PORT
    assert (captured.kind, captured.source, captured.ttl, captured.ip_id) == (
        kind,
        ROUTER6,
        0,
        None,
    )


@pytest.mark.parametrize(
    ("flags", "payload", "kind"),
    [
        ("R", b"", "rst"),
        ("RA", b"", "rst"),
        ("SA", b"", "synack"),
        ("PA", b"HTTP/1.1 403 Forbidden\r\n\r\n", "data"),
        ("FPA", b"<html>blocked</html>", "data"),
        ("FA", b"", "fin"),
    ],
)
def test_tcp_from_a_traced_address_carries_its_ttl_and_ip_id(
    flags: str, payload: bytes, kind: str
) -> None:
    segment = TCP(sport=443, dport=PORT, flags=flags) / payload
    v4 = bytes(IP(src=SERVER, dst=LOCAL, ttl=57, id=4321) / segment)
    port, captured = _dissected("tcp4", v4, SERVER)
    assert port == PORT
    assert (captured.kind, captured.source, captured.ttl, captured.ip_id) == (
        kind,
        SERVER,
        57,
        4321,
    )
    # IPv6's raw TCP socket gives the segment alone, its hop limit as ancillary data.
    v6 = bytes(TCP(sport=443, dport=PORT, flags=flags, chksum=0) / payload)
    port, captured = _dissected("tcp6", v6, SERVER6, hop_limit=55)
    assert port == PORT
    assert (captured.kind, captured.source, captured.ttl, captured.ip_id) == (
        kind,
        SERVER6,
        55,
        None,
    )


def test_tcp_that_is_not_the_traces_is_ignored() -> None:
    reset = TCP(sport=443, dport=PORT, flags="R")
    assert _dissect("tcp4", bytes(IP(src=OTHER, dst=LOCAL) / reset), OTHER, 0, TRACED) is None
    bare = bytes(TCP(sport=443, dport=PORT, flags="R", chksum=0))
    assert _dissect("tcp6", bare, OTHER6, 55, TRACED) is None
    ack = bytes(IP(src=SERVER, dst=LOCAL) / TCP(sport=443, dport=PORT, flags="A"))
    assert _dissect("tcp4", ack, SERVER, 0, TRACED) is None  # a bare ACK says nothing
    syn = bytes(IP(src=SERVER, dst=LOCAL) / TCP(sport=443, dport=PORT, flags="S"))
    assert _dissect("tcp4", syn, SERVER, 0, TRACED) is None
    udp = bytes(IP(src=SERVER, dst=LOCAL) / UDP(sport=443, dport=PORT))
    assert _dissect("tcp4", udp, SERVER, 0, TRACED) is None


def _run(program: list[tuple[int, int, int, int]], packet: bytes) -> int:
    """A classic BPF interpreter for the instructions ``_equals`` emits: what the kernel
    would keep of ``packet`` (0: drop)."""
    accumulator, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        if code == _BPF_LD_W_ABS:
            accumulator = struct.unpack_from("!I", packet, k)[0]
        elif code == _BPF_LD_H_ABS:
            accumulator = struct.unpack_from("!H", packet, k)[0]
        elif code == _BPF_JEQ_K:
            pc += jt if accumulator == k else jf
        elif code == _BPF_RET_K:
            return k
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")
        pc += 1


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_equals_jumps_land_on_accept(count: int) -> None:
    values = [0xC0000250 + i for i in range(count)]
    load = (_BPF_LD_W_ABS, 0, 0, 12)
    program = _equals(load, values)
    assert program[0] == load
    assert program[-2] == (_BPF_RET_K, 0, 0, 0)  # drop
    assert program[-1] == (_BPF_RET_K, 0, 0, _READ_SIZE)  # accept
    assert len(program) == count + 3
    accept = len(program) - 1
    for pc, (code, jt, jf, k) in enumerate(program[1:-2], 1):
        assert (code, k) == (_BPF_JEQ_K, values[pc - 1])
        assert pc + 1 + jt == accept  # a match jumps to accept
        assert jf == 0  # no match: the next test, and after the last, drop
    # The program as the kernel runs it: the IPv4 source address decides.
    for value in values:
        packet = bytes(IP(src=_dotted(value), dst=LOCAL) / TCP())
        assert _run(program, packet) == _READ_SIZE
    assert _run(program, bytes(IP(src=OTHER, dst=LOCAL) / TCP())) == 0


def _dotted(value: int) -> str:
    return ".".join(str(b) for b in value.to_bytes(4, "big"))


def test_equals_on_ports_filters_ipv6_segments_by_source_port() -> None:
    program = _equals((_BPF_LD_H_ABS, 0, 0, 0), [80, 443])
    for port, kept in ((443, _READ_SIZE), (80, _READ_SIZE), (8443, 0)):
        segment = bytes(TCP(sport=port, dport=PORT, chksum=0))
        assert _run(program, segment) == kept


@pytest.mark.parametrize(
    ("flags", "payload", "kind"),
    [
        (0x04, 0, "rst"),  # RST
        (0x14, 0, "rst"),  # RST ACK
        (0x14, 10, "rst"),  # a reset carrying bytes is still a reset
        (0x06, 0, "rst"),  # SYN RST
        (0x12, 0, "synack"),  # SYN ACK
        (0x02, 0, None),  # a SYN: someone connecting, not an answer
        (0x18, 120, "data"),  # PSH ACK with bytes
        (0x10, 1, "data"),  # ACK with bytes
        (0x19, 40, "data"),  # FIN PSH ACK with bytes: data
        (0x11, 0, "fin"),  # FIN ACK
        (0x01, 0, "fin"),
        (0x10, 0, None),  # a bare ACK
        (0x00, 0, None),
    ],
)
def test_tcp_kind(flags: int, payload: int, kind: str | None) -> None:
    assert _tcp_kind(flags, payload) == kind

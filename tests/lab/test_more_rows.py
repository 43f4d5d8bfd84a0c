"""Unit tests for the lab's rows broken for everyone, the CAPTCHA site, ghost names, FIN
injection and the on-path tap: the configuration they produce, the packets the injectors
forge, and what their kernel filters pass."""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from agent.model import failures
from agent.net.tls import validate
from tests.lab import addresses as plan
from tests.lab import censors, censors_more, pki
from tests.lab.fin_injector import forge_fin, is_targeted, parse_segment, segment_filter
from tests.lab.injector import FORGED_IP_ID, FORGED_TTL, parse_query, query_filter
from tests.lab.onpath_injector import forge_rst
from tests.lab.onpath_injector import is_targeted as onpath_targeted
from tests.lab.scenarios import ScenarioError, ScenarioTable, load, parse

SOURCE = Path("test.toml")
BENIGN = {"domain": "example.com", "technique": "clean", "hop": "none", "expected": "ok"}


def table_of(*rows: dict[str, Any]) -> ScenarioTable:
    return parse({"benign_domain": "example.com", "scenario": [BENIGN, *rows]}, SOURCE)


def row(domain: str, technique: str, hop: str = "none", **extra: Any) -> dict[str, Any]:
    return {"domain": domain, "technique": technique, "hop": hop, "expected": "x.y", **extra}


def test_names_broken_for_everyone_are_the_authoritative_servers() -> None:
    table = table_of(
        row("loop.org", "private-everywhere"),
        row("ten.org", "private-everywhere", params={"answer": "10.1.2.3"}),
        row("gone.org", "nxdomain-everywhere"),
        row("empty.org", "noanswer-everywhere"),
        row("ghost.org", "dns-ghost", "isp"),
    )
    auth = censors.authoritative_conf(table)
    assert "host-record=loop.org,www.loop.org,127.0.0.1\n" in auth
    assert "host-record=ten.org,www.ten.org,10.1.2.3\n" in auth
    assert "gone.org" not in auth
    assert "ghost.org" not in auth
    assert 'txt-record=empty.org,"' in auth
    assert "host-record=empty.org" not in auth
    isp = censors.isp_resolver_conf(table)
    assert f"address=/ghost.org/{plan.BLOCKPAGE_SERVER}\n" in isp
    assert "loop.org" not in isp
    assert "gone.org" not in isp
    boxes = censors.censor_http_config(table, "isp", {"blockpage": "b.pem", "interceptor": "i"})
    # example.com, the benign row, is dual-stack: the blockpage server listens on both.
    listen = [plan.BLOCKPAGE_SERVER, plan.twin(plan.BLOCKPAGE_SERVER)]
    assert boxes["blockpage"] == {"listen": listen, "cert": "b.pem"}


def test_broken_servers_take_the_sites_ip_from_the_web_server() -> None:
    table = table_of(row("r.org", "reset-everywhere"), row("s.org", "silent-everywhere"))
    config = censors_more.broken_server_config(table)
    assert config is not None
    assert [(s["ip"], s["mode"]) for s in config["sites"]] == [
        (table.domain("r.org").ip, "reset"),
        (table.domain("s.org").ip, "silent"),
    ]
    served = [s["domain"] for s in censors.webserver_config(table, {"example.com": "c"})["sites"]]
    assert served == ["example.com", "example.com"]  # its IPv4 and IPv6 addresses
    assert censors_more.broken_server_config(table_of()) is None


def test_the_captcha_site_challenges_the_isp_side_only() -> None:
    table = table_of(row("c.tv", "captcha"))
    certs = {"example.com": "e.pem", "c.tv": "c.pem"}
    sites = {s["domain"]: s for s in censors.webserver_config(table, certs)["sites"]}
    assert sites["c.tv"]["challenge"] == ["100.64.0.0/10"]
    assert "challenge" not in sites["example.com"]


def test_fin_rows_drop_the_segment_the_injector_answers() -> None:
    table = table_of(
        row("sf.org", "sni-fin", "border", scheme="https"),
        row("hf.org", "host-fin", "isp", scheme="http"),
    )
    assert censors.hop_rules(table, "border").filter == [
        '-A FORWARD -p tcp --dport 443 -m string --string "sf.org" --algo bm -j DROP'
    ]
    assert censors.hop_rules(table, "isp").filter == [
        '-A FORWARD -p tcp --dport 80 -m string --hex-string "Host: hf.org|0d0a|" --algo bm -j DROP'
    ]
    border = censors_more.fin_injector_config(table, "border")
    assert border == {"iface": "down0", "sni": ["sf.org"], "host": []}
    assert censors_more.fin_injector_config(table, "isp") == {
        "iface": "sub0",
        "sni": [],
        "host": ["hf.org"],
    }
    assert censors_more.fin_injector_config(table_of(), "isp") is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"cert": "mouldy"}, "params.cert must be one of expired, wrong-host, unknown-root"),
        ({"answer": "1.2.3.4"}, r"bad-cert takes no param\(s\) answer"),
    ],
)
def test_bad_cert_params_are_checked(params: dict[str, str], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        table_of(row("b.org", "bad-cert", params=params))


def test_the_default_table_has_a_row_for_every_class() -> None:
    table = load()
    for technique in censors_more.BROKEN_MODES.keys() | {
        "private-everywhere", "nxdomain-everywhere", "noanswer-everywhere", "captcha",
        "dns-ghost", "sni-fin", "host-fin",
    }:  # fmt: skip
        assert table.by_technique(technique), technique
    kinds = {r.params.get("cert") for r in table.by_technique("bad-cert")}
    assert kinds == {"expired", "wrong-host", "unknown-root"}
    assert all(r.expected == "down" for r in table.by_technique("bad-cert"))


@pytest.mark.parametrize(
    ("kind", "failure"),
    [
        ("expired", failures.SSL_INVALID_CERTIFICATE),
        ("wrong-host", failures.SSL_INVALID_HOSTNAME),
        ("unknown-root", failures.SSL_UNKNOWN_AUTHORITY),
    ],
)
def test_bad_certificates_fail_as_the_agent_reports_them(
    tmp_path: Path, kind: str, failure: str
) -> None:
    lab_pki = pki.build(tmp_path, ["good.org", "bad.org"], [], "203.0.113.80", {"bad.org": kind})
    assert validate(_chain(lab_pki.site_cert("good.org")), "good.org", str(lab_pki.ca_file)) is None
    chain = _chain(lab_pki.site_cert("bad.org"))
    assert validate(chain, "bad.org", str(lab_pki.ca_file)) == failure


def _chain(pem: Path) -> list[bytes]:
    from cryptography.hazmat.primitives.serialization import Encoding

    certs = x509.load_pem_x509_certificates(pem.read_bytes())
    return [cert.public_bytes(Encoding.DER) for cert in certs]


CLIENT, SERVER = socket.inet_aton("100.64.1.2"), socket.inet_aton("192.0.2.49")


def frame(
    payload: bytes, dport: int = 443, seq: int = 1000, ack: int = 5000, ttl: int = 64
) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", 40000, dport, seq, ack, 5 << 4, 0x18, 502, 0, 0)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 1, 0x4000, ttl, 6, 0, CLIENT, SERVER
    )
    return b"\x00" * 12 + b"\x08\x00" + ip + tcp + payload


def test_the_injector_answers_the_named_segment_only() -> None:
    sni, host = frozenset({b"voanews.com"}), frozenset({b"tribune.com.pk"})
    hello = parse_segment(frame(b"\x16\x03\x01...voanews.com..."))
    assert hello is not None
    assert is_targeted(hello, sni, host)
    request = parse_segment(frame(b"GET / HTTP/1.1\r\nHost: tribune.com.pk\r\n\r\n", 80))
    assert request is not None
    assert is_targeted(request, sni, host)
    for other in (
        frame(b"\x16\x03\x01...example.com..."),
        frame(b"GET / HTTP/1.1\r\nHost: tribune.com.pk.evil\r\n\r\n", 80),
        frame(b"...voanews.com...", 80),
    ):
        segment = parse_segment(other)
        assert segment is not None
        assert not is_targeted(segment, sni, host)
    assert parse_segment(frame(b"")) is None  # a bare ACK carries nothing to inspect


def test_the_forged_fin_closes_exactly_after_the_clients_data() -> None:
    payload = b"x" * 517
    segment = parse_segment(frame(payload, seq=0xFFFFFF00, ack=777))
    assert segment is not None
    packet = forge_fin(segment)
    version, _, length, ip_id, _flags, ttl, proto, _, src, dst = struct.unpack_from(
        "!BBHHHBBH4s4s", packet
    )
    assert (version, length, ip_id, ttl, proto) == (0x45, 40, FORGED_IP_ID, FORGED_TTL, 6)
    assert (src, dst) == (SERVER, CLIENT)
    sport, dport, seq, ack, offset, tcp_flags = struct.unpack_from("!HHIIBB", packet, 20)
    assert (sport, dport, tcp_flags, offset) == (443, 40000, 0x11, 5 << 4)
    assert seq == 777  # what the client expects next from the server
    assert ack == (0xFFFFFF00 + 517) & 0xFFFFFFFF  # every byte it sent, wrapping around
    pseudo = SERVER + CLIENT + struct.pack("!BBH", 0, 6, 20)
    from scapy.utils import checksum

    assert checksum(pseudo + packet[20:]) == 0  # a valid TCP checksum sums to zero


def run_filter(program: list[tuple[int, int, int, int]], packet: bytes, outgoing: bool) -> int:
    """A classic BPF interpreter for the instructions the filter uses: its return value."""
    a = x = pc = 0
    memory = [0] * 16
    loads = {0x20: 4, 0x28: 2, 0x30: 1, 0x48: 2, 0x50: 1}
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x20 and k == 0xFFFFF004:  # the packet type
            a = 4 if outgoing else 0
        elif code in loads:
            offset = k + (x if code & 0x40 else 0)
            a = int.from_bytes(packet[offset : offset + loads[code]], "big")
        elif code == 0xB1:
            x = 4 * (packet[k] & 0x0F)
        elif code in (0x15, 0x25, 0x45):
            taken = {0x15: a == k, 0x25: a > k, 0x45: bool(a & k)}[code]
            pc += jt if taken else jf
        elif code == 0x06:
            return k
        else:
            a, x = _alu(code, k, a, x, memory)


def _alu(code: int, k: int, a: int, x: int, memory: list[int]) -> tuple[int, int]:
    if code == 0x74:
        return a >> k, x
    if code == 0x64:
        return (a << k) & 0xFFFFFFFF, x
    if code == 0x0C:
        return (a + x) & 0xFFFFFFFF, x
    if code == 0x1C:
        return (a - x) & 0xFFFFFFFF, x
    if code == 0x02:
        memory[k] = a
        return a, x
    if code == 0x61:
        return a, memory[k]
    raise AssertionError(f"opcode {code:#x} not expected in the filter")


def test_the_kernel_filter_passes_web_segments_with_data_only() -> None:
    program = segment_filter()
    assert run_filter(program, frame(b"hello"), outgoing=False) > 0
    assert run_filter(program, frame(b"GET /", dport=80), outgoing=False) > 0
    assert run_filter(program, frame(b"hello", ttl=2), outgoing=False) > 0
    for packet, outgoing in (
        (frame(b""), False),  # a bare ACK
        (frame(b"hello", dport=8080), False),
        (frame(b"hello"), True),  # our own forged packets
        (frame(b"hello", ttl=1), False),  # the router answers it with a time-exceeded
    ):
        assert run_filter(program, packet, outgoing) == 0


def test_the_taps_filter_passes_forwarded_web_segments_only() -> None:
    program = segment_filter(outgoing=True)
    # What the hop sends on: a TTL of 1 left is still forwarded, and the tap must see it.
    for ttl in (64, 1):
        assert run_filter(program, frame(b"hello", ttl=ttl), outgoing=True) > 0
    assert run_filter(program, frame(b"hello"), outgoing=False) == 0  # arriving, not forwarded
    assert run_filter(program, frame(b""), outgoing=True) == 0


def test_the_dns_injectors_filter_leaves_a_query_with_ttl_1_to_the_router() -> None:
    resolver = socket.inet_aton("198.51.100.8")
    program = query_filter("198.51.100.8")
    for ttl, passed in ((64, True), (2, True), (1, False)):
        query = _dns_frame(resolver, ttl)
        assert (run_filter(program, query, outgoing=False) > 0) is passed, ttl
        assert (parse_query(query, resolver) is not None) is passed, ttl


def _dns_frame(resolver: bytes, ttl: int) -> bytes:
    dns = struct.pack("!6H", 7, 0x0100, 1, 0, 0, 0) + b"\x01a\x03org\x00" + struct.pack("!HH", 1, 1)
    udp = struct.pack("!HHHH", 40000, 53, 8 + len(dns), 0) + dns
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, ttl, 17, 0, CLIENT, resolver)
    return b"\x00" * 12 + b"\x08\x00" + ip + udp


def test_the_tap_resets_the_client_in_sequence_and_configures_no_drop() -> None:
    segment = parse_segment(frame(b"\x16\x03\x01...drf.pk...", seq=100, ack=777))
    assert segment is not None
    assert onpath_targeted(segment, frozenset({b"drf.pk"}))
    assert not onpath_targeted(segment, frozenset({b"other.pk"}))
    packet = forge_rst(segment)
    _, _, _, ip_id, _, ttl, _, _, src, dst = struct.unpack_from("!BBHHHBBH4s4s", packet)
    assert (ip_id, ttl, src, dst) == (FORGED_IP_ID, FORGED_TTL, SERVER, CLIENT)
    _sport, _dport, seq, ack, _offset, flags = struct.unpack_from("!HHIIBB", packet, 20)
    assert (seq, ack, flags) == (777, 100 + len(segment.payload), 0x14)  # RST+ACK, in sequence
    table = table_of(row("drf.pk", "sni-onpath", "border", trigger="sni", ipv6=False))
    assert censors_more.onpath_injector_config(table, "border") == {
        "iface": "up0",
        "reply_iface": "down0",
        "sni": ["drf.pk"],
    }
    assert censors_more.onpath_injector_config(table, "isp") is None
    assert censors.hop_rules(table, "border").iptables_restore() == "\n"  # it never drops
    sites = {
        s["domain"]: s
        for s in censors.webserver_config(table, {"example.com": "e", "drf.pk": "d"})["sites"]
    }
    assert sites["drf.pk"]["answer_delay_ms"] == censors_more.FAR_SERVER_DELAY_MS

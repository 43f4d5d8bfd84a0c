"""The QUIC Initial builder against RFC 9001's test vectors, and read back by the lab's
independent QUIC reader (tests.lab.quicsni), as a DPI box would read it."""

from __future__ import annotations

import pytest

from agent.net.quic import MIN_INITIAL, InitialKeys, initial, varint
from agent.probes.protocols import openvpn_hard_reset, twin, wireguard_initiation
from tests.lab.quicsni import initial_sni

RFC_DCID = bytes.fromhex("8394c8f03e515708")  # RFC 9001 appendix A


def test_initial_keys_match_rfc_9001_appendix_a() -> None:
    keys = InitialKeys(RFC_DCID)
    assert keys.secret.hex() == "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"
    assert keys.key.hex() == "1f369613dd76d5467730efcbe3b1a22d"
    assert keys.iv.hex() == "fa044b2f42a3fd3b46fb255c"
    assert keys.hp.hex() == "9f50449e04a0e810283a1e9933adedd2"
    # A.2: the header protection mask of the client Initial's sample.
    assert keys.mask(bytes.fromhex("d1b1c98dd7689fb8ec11d242b123dc9b"))[:5].hex() == "437b9aec36"


@pytest.mark.parametrize(
    ("value", "encoded"), [(37, "25"), (15293, "7bbd"), (494878333, "9d7f3e7d")]
)
def test_varint_matches_rfc_9000_examples(value: int, encoded: str) -> None:
    assert varint(value).hex() == encoded


@pytest.mark.parametrize("sni", ["x.com", "www.youtube.com", "a" * 60 + ".example.org"])
def test_initial_is_a_full_size_v1_initial_that_names_the_sni(sni: str) -> None:
    packet = initial(sni, packet_number=3)
    assert len(packet) == MIN_INITIAL
    assert packet[0] & 0xF0 == 0xC0
    assert packet[1:5] == b"\x00\x00\x00\x01"
    assert sni.encode() not in packet  # encrypted: only a reader that derives the keys sees it
    assert initial_sni(packet) == sni


def test_a_tampered_initial_does_not_open() -> None:
    packet = bytearray(initial("x.com"))
    packet[-1] ^= 1
    assert initial_sni(bytes(packet)) is None


def test_vpn_shapes_have_their_wire_layout() -> None:
    wireguard = wireguard_initiation()
    assert len(wireguard) == 148
    assert wireguard[:4] == b"\x01\x00\x00\x00"
    udp, tcp = openvpn_hard_reset(), openvpn_hard_reset(tcp=True)
    assert len(udp) == 14
    assert udp[0] == 0x38
    assert udp[9:] == bytes(5)
    assert tcp[:2] == b"\x00\x0e"
    assert tcp[2] == 0x38
    assert len(tcp) == 16


def test_twins_look_like_no_shape() -> None:
    for _ in range(200):
        data = twin(148)
        assert len(data) == 148
        assert 0x02 <= data[0] <= 0x31

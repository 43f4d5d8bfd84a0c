"""Agent net: a real QUIC version 1 client Initial packet, built to carry a chosen SNI.

The protocol test sends it to see whether a censor drops QUIC that names a site. It is the
first datagram a browser would send (RFC 9000 section 17.2.2, protected as RFC 9001 section 5
says): a long header, a CRYPTO frame holding a TLS 1.3 ClientHello (SNI, ALPN ``h3``, an
X25519 key share, QUIC transport parameters), padding to the 1200 bytes a client Initial
must fill, AES-128-GCM with the keys every QUIC endpoint derives from the Destination
Connection ID, and header protection. So any DPI that reads SNIs out of QUIC Initials, as
the Great Firewall has since 2024, decrypts it as it would a browser's, and a real QUIC
server answers it. Nothing here completes a handshake: one packet is all the test needs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from agent.net.hello import client_hello as _client_hello
from agent.net.hello import vector as _vector

__all__ = ["INITIAL_SALT", "MIN_INITIAL", "InitialKeys", "client_hello", "initial", "varint"]

QUIC_V1 = 1
INITIAL_SALT = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")  # RFC 9001 5.2
MIN_INITIAL = 1200  # RFC 9000 14.1: a client's Initial datagram is at least this long
_PN_LENGTH = 4
_TAG = 16


def varint(value: int) -> bytes:
    """A QUIC variable-length integer (RFC 9000 16)."""
    for size, prefix in ((1, 0), (2, 0x4000), (4, 0x80000000), (8, 0xC000000000000000)):
        if value < 1 << (8 * size - 2):
            return (prefix | value).to_bytes(size, "big")
    raise ValueError(f"{value} does not fit a QUIC varint")


def _transport_parameters(scid: bytes) -> bytes:
    """What a browser announces (RFC 9000 18.2); initial_source_connection_id is required."""
    params = (
        (0x01, varint(30_000)),  # max_idle_timeout, ms
        (0x04, varint(1 << 20)),  # initial_max_data
        (0x05, varint(1 << 18)),  # initial_max_stream_data_bidi_local
        (0x06, varint(1 << 18)),  # initial_max_stream_data_bidi_remote
        (0x07, varint(1 << 18)),  # initial_max_stream_data_uni
        (0x08, varint(100)),  # initial_max_streams_bidi
        (0x09, varint(100)),  # initial_max_streams_uni
        (0x0F, scid),  # initial_source_connection_id
    )
    return b"".join(varint(kind) + varint(len(value)) + value for kind, value in params)


def client_hello(sni: str, scid: bytes, alpn: str = "h3") -> bytes:
    """A TLS 1.3 ClientHello handshake message for QUIC, naming ``sni``: no legacy session
    id (QUIC has no compatibility mode), and the QUIC transport parameters."""
    return _client_hello(sni, alpn, (0x0039, _transport_parameters(scid)))


def _expand_label(secret: bytes, label: str, length: int) -> bytes:
    """TLS 1.3's HKDF-Expand-Label with an empty context (RFC 8446 7.1)."""
    full = b"tls13 " + label.encode("ascii")
    info = struct.pack("!H", length) + _vector(full, 1) + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


class InitialKeys:
    """A client's Initial packet protection keys for one Destination Connection ID."""

    def __init__(self, dcid: bytes) -> None:
        initial_secret = hmac.new(INITIAL_SALT, dcid, hashlib.sha256).digest()  # HKDF-Extract
        self.secret = _expand_label(initial_secret, "client in", 32)
        self.key = _expand_label(self.secret, "quic key", 16)
        self.iv = _expand_label(self.secret, "quic iv", 12)
        self.hp = _expand_label(self.secret, "quic hp", 16)

    def mask(self, sample: bytes) -> bytes:
        # RFC 9001 5.4.3: the header protection mask is one AES block, ECB by definition.
        encryptor = Cipher(algorithms.AES(self.hp), modes.ECB()).encryptor()
        return encryptor.update(sample) + encryptor.finalize()

    def nonce(self, packet_number: int) -> bytes:
        padded = packet_number.to_bytes(12, "big")
        return bytes(a ^ b for a, b in zip(self.iv, padded, strict=True))


def _frames(hello: bytes, room: int) -> bytes:
    """A CRYPTO frame at offset 0 holding ``hello``, padded with PADDING frames to ``room``."""
    crypto = b"\x06" + varint(0) + varint(len(hello)) + hello
    return crypto + b"\x00" * max(0, room - len(crypto))


def initial(
    sni: str,
    *,
    dcid: bytes | None = None,
    scid: bytes | None = None,
    packet_number: int = 0,
    size: int = MIN_INITIAL,
) -> bytes:
    """A protected client Initial of ``size`` bytes whose ClientHello names ``sni``."""
    dcid = os.urandom(8) if dcid is None else dcid
    scid = os.urandom(8) if scid is None else scid
    hello = client_hello(sni, scid)
    header_fixed = 1 + 4 + 1 + len(dcid) + 1 + len(scid) + 1  # ... + an empty token's length
    # The Length field counts the packet number, the payload and the tag; 2 bytes fit it.
    payload_room = size - header_fixed - 2 - _PN_LENGTH - _TAG
    payload = _frames(hello, payload_room)
    if len(payload) > payload_room:
        raise ValueError(f"a ClientHello for {sni!r} does not fit a {size}-byte Initial")
    first = 0xC0 | (_PN_LENGTH - 1)  # long header, fixed bit, type Initial, 4-byte number
    header = b"".join((
        bytes([first]), struct.pack("!I", QUIC_V1), _vector(dcid, 1), _vector(scid, 1),
        varint(0), struct.pack("!H", 0x4000 | (_PN_LENGTH + len(payload) + _TAG)),
        packet_number.to_bytes(_PN_LENGTH, "big"),
    ))  # fmt: skip
    keys = InitialKeys(dcid)
    sealed = AESGCM(keys.key).encrypt(keys.nonce(packet_number), payload, header)
    # Header protection: the sample starts 4 bytes after the packet number starts.
    pn_offset = len(header) - _PN_LENGTH
    sample_at = 4 - _PN_LENGTH
    mask = keys.mask(sealed[sample_at : sample_at + 16])
    protected = bytearray(header)
    protected[0] ^= mask[0] & 0x0F
    for i in range(_PN_LENGTH):
        protected[pn_offset + i] ^= mask[1 + i]
    return bytes(protected) + sealed

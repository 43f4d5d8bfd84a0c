"""Censor lab: read the SNI out of a QUIC v1 client Initial, as a DPI box does.

Written from RFC 9000 and 9001 apart from the agent's builder (``agent.net.quic``), so that
the lab's QUIC censor (``tests.lab.quic_censor``) is an independent reader: an Initial the
agent got wrong would not be recognised. Steps: the long header, the keys every endpoint
derives from the Destination Connection ID, header protection off, AES-128-GCM open, the
CRYPTO frames reassembled, the ClientHello's server_name extension.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["initial_sni"]

_SALT = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")


def _hkdf_label(secret: bytes, label: bytes, length: int) -> bytes:
    info = struct.pack("!HB", length, 6 + len(label)) + b"tls13 " + label + b"\x00"
    # HKDF-Expand with one block is enough for every length used here (<= 32).
    return hmac.new(secret, info + b"\x01", hashlib.sha256).digest()[:length]


def _varint(data: bytes, at: int) -> tuple[int, int]:
    size = 1 << (data[at] >> 6)
    value = int.from_bytes(data[at : at + size], "big") & ((1 << (8 * size - 2)) - 1)
    return value, at + size


def _open(packet: bytes) -> bytes | None:
    """The decrypted payload of a QUIC v1 Initial, or None if it is not one."""
    if len(packet) < 7 or packet[0] & 0xF0 != 0xC0 or packet[1:5] != b"\x00\x00\x00\x01":
        return None
    at = 5
    dcid = packet[at + 1 : at + 1 + packet[at]]
    at += 1 + packet[at]
    at += 1 + packet[at]  # the Source Connection ID
    token_length, at = _varint(packet, at)
    length, pn_at = _varint(packet, at + token_length)
    secret = hmac.new(_SALT, dcid, hashlib.sha256).digest()
    client = _hkdf_label(secret, b"client in", 32)
    key, iv = _hkdf_label(client, b"quic key", 16), _hkdf_label(client, b"quic iv", 12)
    hp = _hkdf_label(client, b"quic hp", 16)
    sample = packet[pn_at + 4 : pn_at + 20]
    if len(sample) < 16:
        return None
    encryptor = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = encryptor.update(sample) + encryptor.finalize()
    first = packet[0] ^ (mask[0] & 0x0F)
    pn_length = (first & 0x03) + 1
    pn = bytes(b ^ m for b, m in zip(packet[pn_at : pn_at + pn_length], mask[1:], strict=False))
    header = bytes([first]) + packet[1:pn_at] + pn
    nonce = (int.from_bytes(iv, "big") ^ int.from_bytes(pn, "big")).to_bytes(12, "big")
    try:
        return AESGCM(key).decrypt(nonce, packet[pn_at + pn_length : pn_at + length], header)
    except InvalidTag:
        return None


def _crypto(payload: bytes) -> bytes:
    """The CRYPTO frames' data, in offset order (PADDING and PING skipped)."""
    pieces: dict[int, bytes] = {}
    at = 0
    while at < len(payload):
        kind = payload[at]
        if kind in (0x00, 0x01):
            at += 1
            continue
        if kind != 0x06:
            break
        offset, at = _varint(payload, at + 1)
        length, at = _varint(payload, at)
        pieces[offset] = payload[at : at + length]
        at += length
    data = b""
    for offset in sorted(pieces):
        if offset != len(data):
            break
        data += pieces[offset]
    return data


def _server_name(hello: bytes) -> str | None:
    if len(hello) < 4 or hello[0] != 0x01:
        return None
    at = 4 + 2 + 32
    at += 1 + hello[at]  # session id
    at += 2 + int.from_bytes(hello[at : at + 2], "big")  # cipher suites
    at += 1 + hello[at]  # compression methods
    end = at + 2 + int.from_bytes(hello[at : at + 2], "big")
    at += 2
    while at + 4 <= end:
        kind, size = struct.unpack_from("!HH", hello, at)
        if kind == 0:
            body = hello[at + 4 : at + 4 + size]
            name_length = int.from_bytes(body[3:5], "big")
            return body[5 : 5 + name_length].decode("ascii", errors="replace")
        at += 4 + size
    return None


def initial_sni(packet: bytes) -> str | None:
    """The SNI in a QUIC v1 client Initial's ClientHello; None for anything else."""
    try:
        payload = _open(packet)
        return _server_name(_crypto(payload)) if payload is not None else None
    except (IndexError, ValueError, struct.error):
        return None

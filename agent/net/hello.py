"""Agent net: a TLS 1.3 ClientHello built to name a chosen SNI, for QUIC and for TCP.

The QUIC Initial (``agent.net.quic``) carries one in a CRYPTO frame; the trace
(``agent.net.ttl``) sends one in a TLS record on a TCP connection with a chosen IP TTL,
where the ``ssl`` module cannot be told to put the hello in a segment of its own. It is
what a browser's first flight looks like to a censor that reads the SNI: the server_name,
supported groups and signatures, ALPN, TLS 1.3 and an X25519 key share. Nothing here
completes a handshake.
"""

from __future__ import annotations

import os
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

__all__ = ["client_hello", "tls_record", "vector"]

_CIPHER_SUITES = (0x1301, 0x1302, 0x1303)
_GROUPS = (0x001D, 0x0017)  # x25519, secp256r1
_SIGNATURES = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
_HANDSHAKE = 0x16


def vector(data: bytes, length_bytes: int) -> bytes:
    return len(data).to_bytes(length_bytes, "big") + data


def _extension(kind: int, body: bytes) -> bytes:
    return struct.pack("!H", kind) + vector(body, 2)


def _u16s(values: tuple[int, ...]) -> bytes:
    return b"".join(struct.pack("!H", v) for v in values)


def client_hello(
    sni: str, alpn: str, extra: tuple[int, bytes] | None = None, session_id: bytes = b""
) -> bytes:
    """A TLS 1.3 ClientHello handshake message naming ``sni``, with one ``extra`` extension
    (kind, body) if given."""
    public = (
        X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    extensions = b"".join((
        _extension(0x0000, vector(b"\x00" + vector(sni.encode("ascii"), 2), 2)),  # server_name
        _extension(0x000A, vector(_u16s(_GROUPS), 2)),  # supported_groups
        _extension(0x000D, vector(_u16s(_SIGNATURES), 2)),  # signature_algorithms
        _extension(0x0010, vector(vector(alpn.encode("ascii"), 1), 2)),  # ALPN
        _extension(0x002B, vector(_u16s((0x0304,)), 1)),  # supported_versions: TLS 1.3
        _extension(0x002D, vector(b"\x01", 1)),  # psk_key_exchange_modes: psk_dhe_ke
        _extension(0x0033, vector(struct.pack("!H", 0x001D) + vector(public, 2), 2)),
        _extension(*extra) if extra else b"",
    ))  # fmt: skip
    body = b"".join((
        b"\x03\x03", os.urandom(32), vector(session_id, 1),
        vector(_u16s(_CIPHER_SUITES), 2), vector(b"\x00", 1), vector(extensions, 2),
    ))  # fmt: skip
    return b"\x01" + vector(body, 3)


def tls_record(sni: str) -> bytes:
    """A ClientHello naming ``sni`` in one TLS record, as the first bytes of a TCP connection
    (a 32-byte legacy session id: TLS 1.3's middlebox compatibility mode, as browsers send)."""
    hello = client_hello(sni, "http/1.1", session_id=os.urandom(32))
    return struct.pack("!BHH", _HANDSHAKE, 0x0301, len(hello)) + hello

"""Agent layer 3, wire: the code tables of the record schema (``agent.wire.record``).

Failures, TLS versions, ciphers, ALPN and content types travel as small integers from these
tables; a value missing from its table travels as its text. docs/wire-format.md lists them
("Code tables"); keep the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.model import failures as f

__all__ = [
    "ALPN_CODES",
    "CIPHER_CODES",
    "CONTENT_TYPE_CODES",
    "FAILURE_CODES",
    "TLS_VERSION_CODES",
]

# Append-only: a code keeps its meaning forever, since stored records are reclassified
# years later. Never reuse or renumber; add new entries at the end.
FAILURE_CODES: Mapping[int, str] = {
    1: f.CONNECTION_REFUSED,
    2: f.CONNECTION_RESET,
    3: f.CONNECTION_ABORTED,
    4: f.GENERIC_TIMEOUT,
    5: f.EOF,
    6: f.HOST_UNREACHABLE,
    7: f.NETWORK_UNREACHABLE,
    8: f.DNS_NXDOMAIN,
    9: f.DNS_SERVFAIL,
    10: f.DNS_REFUSED,
    11: f.DNS_NO_ANSWER,
    12: f.SSL_UNKNOWN_AUTHORITY,
    13: f.SSL_INVALID_HOSTNAME,
    14: f.SSL_INVALID_CERTIFICATE,
    15: f.SSL_FAILED_HANDSHAKE,
    16: f.NO_CONTROL,
    17: f.CONTROL_UNREACHABLE,
    18: f.CONTROL_TIMEOUT,
    19: f.CONTROL_BAD_RESPONSE,
    20: f.CONTROL_TLS_ERROR,
    21: f.REDIRECT_BAD_LOCATION,
    22: f.REDIRECT_LOOP,
    23: f.REDIRECT_LIMIT,
}
TLS_VERSION_CODES: Mapping[int, str] = {1: "TLSv1", 2: "TLSv1.1", 3: "TLSv1.2", 4: "TLSv1.3"}
CIPHER_CODES: Mapping[int, str] = {
    1: "TLS_AES_256_GCM_SHA384",
    2: "TLS_AES_128_GCM_SHA256",
    3: "TLS_CHACHA20_POLY1305_SHA256",
    4: "ECDHE-ECDSA-AES256-GCM-SHA384",
    5: "ECDHE-RSA-AES256-GCM-SHA384",
    6: "ECDHE-ECDSA-AES128-GCM-SHA256",
    7: "ECDHE-RSA-AES128-GCM-SHA256",
    8: "ECDHE-ECDSA-CHACHA20-POLY1305",
    9: "ECDHE-RSA-CHACHA20-POLY1305",
}
ALPN_CODES: Mapping[int, str] = {1: "http/1.1", 2: "h2"}
CONTENT_TYPE_CODES: Mapping[int, str] = {
    1: "text/html",
    2: "text/html; charset=utf-8",
    3: "text/html; charset=UTF-8",
    4: "text/plain",
    5: "text/plain; charset=utf-8",
    6: "application/json",
    7: "text/html;charset=utf-8",
    8: "text/html; charset=iso-8859-1",
}

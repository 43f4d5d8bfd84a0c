"""Agent model: the far end's protocol, the one definition the agent and the collector share.

The far end (``collector.farend``) is a server outside the censored network that the throttle
and protocol tests compare a trigger with a benign payload through. It speaks a small subset
of HTTP/1.1, plain or in TLS with any SNI, so that a censor sees exactly what it would see
for the trigger name:

- ``GET /down/N``: the far end answers ``200`` and streams N bytes;
- ``POST /up/N`` with ``Content-Length: N`` and :data:`WINDOW_HEADER` (ms): once the token
  and the caps allow it, it answers ``100 Continue``, reads the body for at most that window
  after its first byte, then answers ``200`` with JSON
  ``{"bytes", "skip", "us", "total_us"}`` (what it received, the first read's size, the
  microseconds from the first to the last byte, and from the head to the last byte);

each with the agent's token in :data:`TOKEN_HEADER`. UDP: a datagram ``NSFE1 <token>``
registers its source address for :data:`UDP_LEASE_S` seconds; the far end answers
:data:`UDP_HELLO_OK` and echoes what that address sends, up to :data:`MAX_DATAGRAM` bytes a
datagram. Standard library only, as all of ``agent.model``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DOWN_PREFIX",
    "MAX_DATAGRAM",
    "MAX_TRANSFER",
    "MAX_WINDOW_MS",
    "TOKEN_HEADER",
    "UDP_HELLO",
    "UDP_HELLO_OK",
    "UDP_LEASE_S",
    "UP_PREFIX",
    "WINDOW_HEADER",
    "FarendTicket",
    "parse_ticket",
]

DOWN_PREFIX = "/down/"
UP_PREFIX = "/up/"
TOKEN_HEADER = "X-Netsonde-Token"
WINDOW_HEADER = "X-Netsonde-Window-Ms"
# One transfer's bounds: the far end refuses more, so a token cannot become a download pump.
MAX_TRANSFER = 4 * 1024 * 1024
MAX_WINDOW_MS = 10_000
UDP_HELLO = b"NSFE1 "
UDP_HELLO_OK = b"NSFE1 ok"
UDP_LEASE_S = 60.0
MAX_DATAGRAM = 1500
MAX_TOKEN = 512
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~-]{1,512}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.:-]{1,253}$")
_TARGET_RE = re.compile(r"^[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]{1,2048}$")  # a URL or a name


@dataclass(frozen=True)
class FarendTicket:
    """What the collector's ``POST /api/v1/farend`` hands an enrolled agent: where the far end
    is, and a short-lived token for it."""

    host: str  # a name or an IP literal
    tls_port: int
    http_port: int
    udp_port: int
    token: str
    expires_ms: int  # Unix ms
    # URLs (or names) the collector asks the daemon to test for throttling, beside its own.
    targets: tuple[str, ...] = ()


def _port(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        return value
    return None


def parse_ticket(data: object, max_targets: int = 100) -> FarendTicket | None:
    """The collector's JSON answer as a ticket; None for anything malformed, so whoever answers
    in the collector's name can make the agent do no more than fail its test."""
    if not isinstance(data, dict):
        return None
    host, token, expires = data.get("host"), data.get("token"), data.get("expires")
    ports = [_port(data.get(key)) for key in ("tls_port", "http_port", "udp_port")]
    if not isinstance(host, str) or not _HOST_RE.match(host) or None in ports:
        return None
    if not isinstance(token, str) or not _TOKEN_RE.match(token):
        return None
    if isinstance(expires, bool) or not isinstance(expires, int) or expires < 0:
        return None
    raw = data.get("targets", [])
    if not isinstance(raw, list) or len(raw) > max_targets:
        return None
    targets = tuple(t for t in raw if isinstance(t, str) and _TARGET_RE.match(t))
    tls_port, http_port, udp_port = (p for p in ports if p is not None)
    return FarendTicket(host, tls_port, http_port, udp_port, token, expires, targets)

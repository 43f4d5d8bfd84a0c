"""Agent layer 2, probes: the HTTP test over an open connection, and its Host swap.

When the request naming the host is cut, a second connection to the same IP
sends a benign Host. If that one is answered, the censor reacts to the Host
header (Host filtering), not to the address.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.fingerprints import FingerprintSet
from agent.net.http import HTTPRoundTrip, Inspector, round_trip
from agent.net.tcp import connect

# Failures that mean the request was cut by the network rather than answered.
CUT = frozenset({"connection_reset", "generic_timeout_error", "eof_error"})


def inspector(fingerprints: FingerprintSet | None) -> Inspector | None:
    """Match a response against blockpage fingerprints; known false positives don't count."""
    if fingerprints is None:
        return None

    def inspect(body: bytes, headers: Sequence[tuple[str, str]]) -> str | None:
        for match in (fingerprints.match_body(body), fingerprints.match_headers(dict(headers))):
            if match is not None and not match.false_positive:
                return match.fingerprint.name
        return None

    return inspect


async def benign_fetch(ip: str, port: int, benign_host: str, *, timeout: float) -> HTTPRoundTrip:
    """The Host swap, over plain HTTP on a fresh connection."""
    tcp_obs, stream = await connect(ip, port, timeout=timeout)
    if stream is None:
        return HTTPRoundTrip.failed(benign_host, "/", tcp_obs.ms, tcp_obs.failure)
    return await round_trip(stream, benign_host, "/", timeout=timeout)

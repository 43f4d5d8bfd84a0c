"""Agent probes: the HTTP test over an open connection, and its Host swap.

When the request naming the host is cut, a second connection to the same IP
sends a benign Host. If that one is answered, the censor reacts to the Host
header (Host filtering), not to the address.
"""

from __future__ import annotations

from agent.model.observations import HTTPRoundTrip
from agent.net.http import round_trip
from agent.net.tcp import connect

# Failures that mean the request was cut by the network rather than answered.
CUT = frozenset({"connection_reset", "generic_timeout_error", "eof_error"})


async def benign_fetch(ip: str, port: int, benign_host: str, *, timeout: float) -> HTTPRoundTrip:
    """The Host swap, over plain HTTP on a fresh connection."""
    tcp_obs, stream = await connect(ip, port, timeout=timeout)
    if stream is None:
        return HTTPRoundTrip.failed(benign_host, "/", tcp_obs.ms, tcp_obs.failure)
    return await round_trip(stream, benign_host, "/", timeout=timeout)

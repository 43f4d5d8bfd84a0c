"""Agent probes: the TLS test of one IP, and its SNI swap.

When the handshake naming the host fails, a second connection to the same IP
names a benign host instead. If that one completes, the censor reacts to the
name (SNI filtering), not to the address.
"""

from __future__ import annotations

from agent.model.observations import TLSHandshake
from agent.net import tls
from agent.net.tcp import connect


async def benign_handshake(
    ip: str, port: int, benign_sni: str, *, ca_file: str | None, timeout: float
) -> TLSHandshake:
    """The SNI swap on a fresh connection; a failed reconnect is reported as the handshake's."""
    tcp_obs, stream = await connect(ip, port, timeout=timeout)
    if stream is None:
        return TLSHandshake.failed(benign_sni, tcp_obs.ms, tcp_obs.failure)
    observation, tls_stream = await tls.handshake(
        stream, benign_sni, ca_file=ca_file, timeout=timeout
    )
    if tls_stream is not None:
        tls_stream.close()
    return observation

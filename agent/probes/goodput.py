"""Agent probe: one benign goodput sample through the far end, for degraded-network periods.

A bounded download over TLS naming the benign name (what most traffic looks like), from the
far end's TLS port (``agent.model.farend``), timed as the throttle test times its transfers
(``agent.net.transfer``; its goodput is ``agent.verdict.throttle.goodput_bps``); the
collector compares each agent's samples with its own baseline (``collector.degradation``).
The far end's certificate is not validated: only the speed of the path matters here.
"""

from __future__ import annotations

from agent.model.observations import Transfer
from agent.net.tcp import connect
from agent.net.tls import handshake
from agent.net.transfer import download

__all__ = ["sample"]


async def sample(
    ip: str, port: int, token: str, name: str, size: int, *, window: float, timeout: float
) -> Transfer | None:
    """A ``size``-byte download naming ``name``; None if no connection or handshake."""
    _tcp, opened = await connect(ip, port, timeout=timeout)
    if opened is None:
        return None
    _shake, secured = await handshake(opened, name, timeout=timeout)
    if secured is None:
        return None
    return await download(secured, name, token, size, window=window, timeout=window + timeout)

"""Agent probes: the DNS test of one host name.

Asks the system resolver and every configured public resolver at once, for A and for
AAAA: a censor may lie about one family and forget the other. The public exchanges keep
every reply (see ``agent.net.dns.udp_exchange``), which is what exposes on-path injection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from agent.model.addresses import is_address
from agent.model.observations import DNSExchange, DNSObservation, SystemResolution
from agent.net.dns import system_resolve, udp_exchange

QTYPES = ("A", "AAAA")


async def measure(
    host: str,
    resolvers: Sequence[str],
    *,
    timeout: float = 2.0,
    window: float = 0.3,
    resolv_conf: str = "/etc/resolv.conf",
) -> DNSObservation:
    if is_address(host):
        # An address needs no resolving; asking a resolver about it would only leak the target.
        literal = SystemResolution(
            name=host,
            qtype="A",
            nameservers=(),
            server=None,
            rcode=None,
            addresses=(host,),
            answer_ttl=None,
            ms=0.0,
            failure=None,
        )
        return DNSObservation(system=literal, public=())
    systems = [
        system_resolve(host, qtype, timeout=timeout, resolv_conf=resolv_conf) for qtype in QTYPES
    ]
    exchanges = [
        udp_exchange(server, host, qtype, timeout=timeout, window=window)
        for qtype in QTYPES
        for server in resolvers
    ]
    system, system6, *public = await asyncio.gather(*systems, *exchanges)
    assert isinstance(system, SystemResolution)
    assert isinstance(system6, SystemResolution)
    found = [p for p in public if isinstance(p, DNSExchange)]
    return DNSObservation(
        system=system,
        public=tuple(p for p in found if p.qtype == "A"),
        system6=system6,
        public6=tuple(p for p in found if p.qtype == "AAAA"),
    )

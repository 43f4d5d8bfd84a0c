"""Agent model: which addresses are bogons - never a public site's.

One list, used by the verdict (a resolver answering a bogon is tampering) and by the
collector (it must not probe its own host or LAN on an agent's say-so). Not
``ipaddress.is_private``: that also flags the documentation ranges (192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24), which route nowhere in the wild and are the censor
lab's public internet.
"""

from __future__ import annotations

import ipaddress

BOGON_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)


def is_bogon(address: str) -> bool:
    """True for a bogon; False for a public address or a string that is no address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 reaches 10.0.0.1
    return any(ip in net for net in BOGON_NETWORKS if net.version == ip.version)

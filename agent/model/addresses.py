"""Agent model: the one address filter: which addresses are public, and which are bogons.

Two questions, one list:

- :func:`may_reach`: may netsonde open a connection to this address on someone's behalf?
  The collector asks it of every address a control would measure (an agent's, or a DNS
  answer's), and the agent of every target a remote test list names: reaching into a host's
  own loopback or LAN, a cloud metadata service or a translation prefix that leads there is
  refused. Everything not globally reachable is refused (the IANA special-purpose
  registries), documentation ranges included, unless an operator allows a network
  explicitly; the censor lab allows its own "internet", the documentation ranges.
- :func:`is_bogon`: does a resolver answering this address show tampering? The same list
  without the documentation ranges, which are the lab's public internet and which no
  resolver in the wild hands out.

Addresses that embed another are judged by what they reach: an IPv4-mapped address
(``::ffff:10.0.0.1``) and a NAT64 one (``64:ff9b::10.0.0.1``) by their IPv4 address. Not
``ipaddress``'s ``is_private``/``is_global``: their lists change between Python versions,
and the documentation ranges must be treated differently for the two questions.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

__all__ = [
    "BOGON_NETWORKS",
    "TEST_NETWORKS",
    "IPNetwork",
    "is_address",
    "is_bogon",
    "may_reach",
    "parse_networks",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(*texts: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(text) for text in texts)


BOGON_NETWORKS = _networks(
    "0.0.0.0/8",  # this network
    "10.0.0.0/8",  # RFC 1918
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, cloud metadata services
    "172.16.0.0/12",  # RFC 1918
    "192.0.0.0/24",  # IETF protocol assignments
    "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
    "192.168.0.0/16",  # RFC 1918
    "198.18.0.0/15",  # benchmarking
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and the broadcast address
    "::/8",  # reserved: ::, ::1, IPv4-compatible ::a.b.c.d, translated ::ffff:0:a.b.c.d
    "100::/64",  # discard-only
    "2001::/23",  # IETF protocol assignments, Teredo among them
    "2002::/16",  # 6to4: it embeds an IPv4 address of any kind
    "64:ff9b:1::/48",  # local-use NAT64
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local (deprecated)
    "ff00::/8",  # multicast
)
# Documentation ranges (RFC 5737, RFC 3849): routed nowhere, and the censor lab's internet.
TEST_NETWORKS = _networks("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _address(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _within(ip: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def is_address(text: str) -> bool:
    """Whether ``text`` is an IP address as Python writes one, rather than a host name."""
    return _address(text) is not None


def is_bogon(address: str) -> bool:
    """True for a bogon; False for a public or documentation address, or a non-address."""
    ip = _address(address)
    return ip is not None and _within(ip, BOGON_NETWORKS)


def may_reach(address: str, allowed: Sequence[IPNetwork] = ()) -> bool:
    """Whether a connection to ``address`` may be opened on someone else's say-so: a
    globally reachable address, or one inside a network the operator ``allowed``."""
    ip = _address(address)
    if ip is None:
        return False
    if _within(ip, allowed):
        return True
    return not _within(ip, BOGON_NETWORKS) and not _within(ip, TEST_NETWORKS)


def parse_networks(texts: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Networks as an operator writes them (``10.0.0.0/8``, ``2001:db8::/32``, an address
    alone); ValueError naming the first that is not one."""
    found = []
    for text in texts:
        try:
            found.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP network") from None
    return tuple(found)

"""Agent net: whether this host has a route to an address, found without sending anything.

A UDP socket ``connect()``ed to an address makes the kernel pick a route and a source
address, and sends no packet; no route fails at once. A source that is link-local reaches
only its own link, so a global address behind it counts as unrouted: a host with IPv6 on
its LAN but none upstream looks exactly like that.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["has_route"]

_DISCARD_PORT = 9  # any port will do: nothing is sent


def has_route(address: str) -> bool:
    """True when a connection to ``address`` would leave with a usable source address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((address, _DISCARD_PORT))
            source = ipaddress.ip_address(sock.getsockname()[0].split("%", 1)[0])
    except OSError:
        # No route, no address of the family, or the family disabled in this kernel.
        return False
    return ip.is_link_local or ip.is_loopback or not (source.is_link_local or source.is_unspecified)

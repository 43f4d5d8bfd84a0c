"""Censor lab: the address plan, in one place.

The lab's "public internet" uses only the documentation ranges (RFC 5737) and
the ISP side uses the shared address space (RFC 6598), so nothing in the lab can
collide with, or leak towards, a real network. The lab is dual-stack: every IPv4
address of the plan has an IPv6 twin in the IPv6 documentation range (RFC 3849),
``2001:db8:4::`` followed by the IPv4 address's 32 bits (:func:`twin`), links and
routes included, so a site's two addresses read alike.

    agent --up0/down0-- cpe --up0/sub0-- isp --up0/down0-- border --up0/down0-- transit
          --up0/down0-- net

The cpe (the subscriber's own router) and transit (the internet beyond the border) are
plain routers with no censor, so a censor at the isp or the border has a router on each
side and a TTL-limited trace can say where it sits (``tests.lab.positions``).
"""

from __future__ import annotations

import ipaddress

# The namespaces in path order, from the agent to the internet's servers.
ROLES = ("agent", "cpe", "isp", "border", "transit", "net")
ROUTERS = ROLES[1:-1]  # every namespace between the agent and the servers forwards
HOPS = ("isp", "border")  # the routers that carry censors

# Point-to-point links, in path order: each joins a role and the next one.
# (left role, left ifname, left addr, right role, right ifname, right addr)
LINKS = (
    ("agent", "up0", "100.64.1.2/30", "cpe", "down0", "100.64.1.1/30"),
    ("cpe", "up0", "100.64.3.1/30", "isp", "sub0", "100.64.3.2/30"),
    ("isp", "up0", "100.64.2.1/30", "border", "down0", "100.64.2.2/30"),
    ("border", "up0", "198.51.100.253/30", "transit", "down0", "198.51.100.254/30"),
    ("transit", "up0", "198.51.100.249/30", "net", "down0", "198.51.100.250/30"),
)

# Where each hop faces the agent: censors that answer the agent act on this side.
AGENT_FACING_IFACE = {"isp": "sub0", "border": "down0"}
# ... and where it faces the internet: what the agent uploads leaves here.
NET_FACING_IFACE = {"isp": "up0", "border": "up0"}
# Links whose senders send MTU-sized packets, not 64 KB GSO ones: a throttle's queue counts
# packets, and eight GSO packets would hold seconds of a 150 kbit/s flow.
NO_GSO = (("agent", "up0"), ("net", "down0"))

ISP_RESOLVER = "100.64.0.53"
BLOCKPAGE_SERVER = "203.0.113.80"
INJECTED_ANSWER = "203.0.113.66"
AUTHORITATIVE_DNS = "198.51.100.53"
PUBLIC_RESOLVER = "198.51.100.8"
COLLECTOR = "198.51.100.10"
# One IP per test domain, allocated in table order: first 192.0.2.0/24, then, for big
# tables (the 670-domain benchmark), the parts of the other two ranges that no lab
# service uses.
SITE_RANGES = (
    ("192.0.2.0", 10, 254),
    ("198.51.100.0", 11, 247),  # .248/30 and .252/30 are the transit router's links
    ("203.0.113.0", 1, 254),
    ("192.0.2.0", 1, 9),
)

# Local service addresses per namespace (bound on lo).
LOCAL_ADDRESSES = {
    "agent": (),
    "cpe": (),
    "isp": (ISP_RESOLVER, BLOCKPAGE_SERVER),
    "border": (),
    "transit": (),
    "net": (AUTHORITATIVE_DNS, PUBLIC_RESOLVER, COLLECTOR),
}

# Static routes beyond the connected ones.
ROUTES = {
    "agent": (("default", "100.64.1.1"),),
    "cpe": (("default", "100.64.3.2"),),
    "isp": (("default", "100.64.2.2"), ("100.64.1.0/30", "100.64.3.1")),
    "border": (("default", "198.51.100.254"), ("100.64.0.0/10", "100.64.2.1")),
    "transit": (("default", "198.51.100.250"), ("100.64.0.0/10", "198.51.100.253")),
    # The net ns has no default route: a packet for anything outside the lab dies there. The
    # border's uplink is routed back too: what the border itself asks (its resolver) returns.
    "net": (("100.64.0.0/10", "198.51.100.249"), ("198.51.100.252/30", "198.51.100.249")),
}

TWIN_PREFIX = ipaddress.IPv6Network("2001:db8:4::/96")
LAB_RANGES = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "100.64.0.0/10", "2001:db8::/32")
)

TRANSPARENT_PROXY_PORT = 3129
TLS_INTERCEPTOR_PORT = 3443


def _site_pool() -> list[str]:
    reserved = {
        ISP_RESOLVER,
        BLOCKPAGE_SERVER,
        INJECTED_ANSWER,
        AUTHORITATIVE_DNS,
        PUBLIC_RESOLVER,
        COLLECTOR,
    }
    pool = []
    for base, first, last in SITE_RANGES:
        for offset in range(first, last + 1):
            address = str(ipaddress.ip_address(base) + offset)
            if address not in reserved:
                pool.append(address)
    return pool


SITE_POOL = tuple(_site_pool())


def site_address(index: int) -> str:
    """The IP of the index-th site in the table."""
    if index >= len(SITE_POOL):
        raise ValueError(f"the lab has room for {len(SITE_POOL)} sites")
    return SITE_POOL[index]


def twin(address: str) -> str:
    """The IPv6 twin of an IPv4 address (``192.0.2.10`` -> ``2001:db8:4::c000:20a``), of a
    network or interface address (``100.64.1.2/30`` -> ``2001:db8:4::6440:102/126``), or of
    the default route."""
    if address == "default":
        return "::/0"
    text, slash, length = address.partition("/")
    ip = ipaddress.ip_address(int(TWIN_PREFIX.network_address) + int(ipaddress.IPv4Address(text)))
    return f"{ip}/{96 + int(length)}" if slash else str(ip)


def bogon_twin(address: str) -> str:
    """An IPv6 bogon (unique local, fd00::/8) standing for an IPv4 one, for resolvers that lie."""
    return str(ipaddress.IPv6Address((0xFD << 120) + int(ipaddress.IPv4Address(address))))


def site_address6(index: int) -> str:
    """The IPv6 address of the index-th site in the table: its IPv4 address's twin."""
    return twin(site_address(index))


def in_lab(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in net for net in LAB_RANGES)

"""Censor lab: where each censor sits on the path, as a TTL-limited trace finds it.

Pure, from the address plan and the scenario table, so the self-tests and the agent's trace
tests share one answer. A trace repeats a trigger with IP TTL 1, 2, ... on fresh
connections: each router on the way answers the TTL that runs out at it with an ICMP
time-exceeded, and the censor first reacts at some TTL.

- A censor that acts on *forwarded* packets at hop H (iptables FORWARD rules, the FIN
  injector, the on-path tap) never sees a packet that reaches H with TTL 1: Linux sends the
  time-exceeded before the FORWARD chain. It reacts from TTL = ROUTER_TTL[H] + 1, after H.
- A box that *terminates* the connection at H (the transparent proxy of http-blockpage: nat
  PREROUTING redirects the flow to a local socket before any TTL check) answers a trigger
  that reaches H with TTL 1: from TTL = ROUTER_TTL[H], after the router before H.

A router's time-exceeded comes from the address of its interface that routes back to the
agent (Linux looks up the route to the sender, with net.ipv4.icmp_errors_use_inbound_ifaddr
off, and takes that route's source), which in this chain is the interface facing the agent:
:func:`router_address`. ``tests/lab/test_positions.py`` checks it in a running lab.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.lab import addresses as plan
from tests.lab.scenarios import Scenario

# The TTL that runs out at each router: the cpe is the agent's first hop.
ROUTER_TTL: dict[str, int] = {role: ttl for ttl, role in enumerate(plan.ROUTERS, start=1)}
SERVER_TTL = len(plan.ROUTERS) + 1  # the smallest TTL that reaches a server in the net ns

ONPATH_TECHNIQUES = frozenset({"sni-onpath"})
# Boxes that take the connection over at their hop rather than act on what it forwards.
TERMINATING = frozenset({"http-blockpage"})
# The techniques a trace locates: each acts on one trigger (the SYN to the IP, the
# ClientHello naming the SNI, the request naming the Host) at one hop.
TRACEABLE = frozenset(
    {
        "ip-drop", "ip-reset", "ip6-drop", "sni-reset", "sni-drop", "host-reset", "host-drop",
        "http-blockpage", "sni-fin", "host-fin", *ONPATH_TECHNIQUES,
    }
)  # fmt: skip
FAMILIES = (4, 6)


@dataclass(frozen=True)
class Position:
    censor_ttl: int  # the smallest TTL at which the censor reacts
    after_hop: str  # the last router that answers before it (a time-exceeded's source)
    routers: tuple[str, ...]  # the routers' addresses at TTL 1 .. censor_ttl - 1
    path: str  # "in": it could drop (in-path); "on": it only injects (a tap)


def router_address(role: str, family: int = 4) -> str:
    """The source of the ICMP time-exceeded that router ``role`` sends the agent: the address
    of its interface towards the agent, or that address's IPv6 twin."""
    if role not in plan.ROUTERS:
        raise ValueError(f"{role!r} is not a router of the lab (one of {', '.join(plan.ROUTERS)})")
    if family not in FAMILIES:
        raise ValueError(f"family must be 4 or 6, not {family!r}")
    address = next(right_addr for *_, right, _if, right_addr in plan.LINKS if right == role)
    ip = address.partition("/")[0]
    return ip if family == 4 else plan.twin(ip)


def benign_address(family: int = 4) -> str:
    """What a trace of an IP trigger compares with: the collector's address, in the net ns
    behind the same routers as every site, and censored by no row."""
    if family not in FAMILIES:
        raise ValueError(f"family must be 4 or 6, not {family!r}")
    return plan.COLLECTOR if family == 4 else plan.twin(plan.COLLECTOR)


def expected_position(row: Scenario) -> Position | None:
    """Where a trace of the row's trigger finds its censor; None for a row no trace locates."""
    if row.technique not in TRACEABLE:
        return None
    family = 6 if row.technique == "ip6-drop" else 4
    last_router = ROUTER_TTL[row.hop] - (1 if row.technique in TERMINATING else 0)
    if last_router < 1:
        raise ValueError(f"{row.domain}: no router answers before {row.hop}")
    routers = tuple(router_address(role, family) for role in plan.ROUTERS[:last_router])
    return Position(
        censor_ttl=last_router + 1,
        after_hop=routers[-1],
        routers=routers,
        path="on" if row.technique in ONPATH_TECHNIQUES else "in",
    )

"""Censor lab: namespaces, links, addresses and routes.

Builds ``agent -- cpe -- isp -- border -- transit -- net`` from the address plan. The namespaces
are joined only to each other: no veth ever has an end in the host's
namespace, so nothing in the lab can route to the host's uplink.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.lab import addresses as plan
from tests.lab.shell import run

PREFIX_RE = re.compile(r"^nsl[0-9a-f]{6}$")
NS_NAME_RE = re.compile(rf"^(nsl[0-9a-f]{{6}})-({'|'.join(plan.ROLES)})$")
NETNS_ETC = Path("/etc/netns")

# Forwarding on the routers. IPv6 has static addresses only (no router advertisements, no
# duplicate address detection, which would leave fresh addresses unusable for a second),
# and keeps them when the shutdown takes a link down. ICMP errors are not rate limited: the
# lab measures where a censor sits with TTL-limited probes, each answered by a router's
# time-exceeded, and a router that kept quiet for a second after a few of them would look
# like a drop. (A real router may well limit them; a trace must tolerate that, the lab's
# self-tests must not.)
ROUTER_SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/ipv6/conf/all/forwarding": "1",
    "net/ipv4/icmp_ratelimit": "0",
    "net/ipv6/icmp/ratelimit": "0",
}
COMMON_SYSCTLS = {
    f"net/ipv6/conf/{which}/{key}": value
    for which in ("all", "default")
    for key, value in (
        ("disable_ipv6", "0"),
        ("accept_dad", "0"),
        ("accept_ra", "0"),
        ("autoconf", "0"),
        ("keep_addr_on_down", "1"),
    )
}


RESOLV_CONF = {
    "agent": (plan.ISP_RESOLVER, "the ISP's resolver"),
    "cpe": (plan.ISP_RESOLVER, "the ISP's resolver"),
    "isp": (plan.ISP_RESOLVER, "the ISP's resolver"),
    "border": (plan.PUBLIC_RESOLVER, "the public resolver"),
    "transit": (plan.PUBLIC_RESOLVER, "the public resolver"),
    "net": (plan.AUTHORITATIVE_DNS, "the authoritative server"),
}


@dataclass(frozen=True)
class Topology:
    prefix: str

    def ns(self, role: str) -> str:
        if role not in plan.ROLES:
            raise ValueError(f"unknown lab namespace {role!r} (one of {', '.join(plan.ROLES)})")
        return f"{self.prefix}-{role}"

    @property
    def namespaces(self) -> list[str]:
        return [self.ns(role) for role in plan.ROLES]


def list_lab_namespaces() -> dict[str, list[str]]:
    """Existing lab namespaces on this host, grouped by prefix."""
    listing = run(["ip", "netns", "list"]).stdout
    found: dict[str, list[str]] = {}
    for line in listing.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = NS_NAME_RE.match(name)
        if match:
            found.setdefault(match.group(1), []).append(name)
    return found


def build(topo: Topology, site_ips: Iterable[str]) -> None:
    for name in topo.namespaces:
        run(["ip", "netns", "add", name])
    for role in plan.ROLES:
        sysctls = dict(COMMON_SYSCTLS)
        if role in plan.ROUTERS:
            sysctls.update(ROUTER_SYSCTLS)
        script = "; ".join(f"echo {v} > /proc/sys/{k}" for k, v in sysctls.items())
        run(["sh", "-c", script], ns=topo.ns(role))
    batches: dict[str, list[str]] = {role: ["link set lo up"] for role in plan.ROLES}
    for left, left_if, left_addr, right, right_if, right_addr in plan.LINKS:
        run(
            ["ip", "-n", topo.ns(left), "link", "add", left_if, "type", "veth"]
            + ["peer", "name", right_if, "netns", topo.ns(right)]
        )
        batches[left] += [*_addresses(left_addr, left_if), f"link set {left_if} up"]
        batches[right] += [*_addresses(right_addr, right_if), f"link set {right_if} up"]
    for role, ifname in plan.NO_GSO:
        batches[role].append(f"link set {ifname} gso_max_segs 1")
    for role, local in plan.LOCAL_ADDRESSES.items():
        batches[role] += [line for a in local for line in _addresses(f"{a}/32", "lo")]
    batches["net"] += [f"addr add {ip}/{_host_length(ip)} dev lo" for ip in site_ips]
    for role, routes in plan.ROUTES.items():
        batches[role] += [f"route add {dest} via {via}" for dest, via in routes]
        batches[role] += [f"route add {plan.twin(d)} via {plan.twin(v)}" for d, v in routes]
    for role, lines in batches.items():
        run(["ip", "-n", topo.ns(role), "-batch", "-"], input_text="\n".join(lines) + "\n")
    # `ip netns exec` bind-mounts these over /etc/resolv.conf, so no process in the lab ever
    # asks the host's resolver: the agent uses its ISP's, the net ns the authoritative server.
    for role, (nameserver, label) in RESOLV_CONF.items():
        etc = NETNS_ETC / topo.ns(role)
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(
            f"# netsonde censor lab: {label}\nnameserver {nameserver}\n"
        )


def _addresses(address: str, ifname: str) -> list[str]:
    """``ip -batch`` lines giving an interface an IPv4 address and its IPv6 twin."""
    return [f"addr add {address} dev {ifname}", f"addr add {plan.twin(address)} dev {ifname} nodad"]


def _host_length(ip: str) -> int:
    return 128 if ":" in ip else 32


def destroy(prefix: str, namespaces: Iterable[str]) -> None:
    """Kill whatever still runs inside the namespaces, then delete them."""
    if not PREFIX_RE.match(prefix):
        raise ValueError(f"not a lab prefix: {prefix!r}")
    for name in namespaces:
        pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
        if pids:
            run(["kill", "-9", *pids], check=False)
        run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(NETNS_ETC / name, ignore_errors=True)


def set_link(topo: Topology, role: str, ifname: str, up: bool) -> None:
    """Takes a link down or up; up, the static routes come back too, since the kernel
    deletes every route through a link that goes down (the isp's route to the agent's
    subnet through the cpe, for one)."""
    run(["ip", "-n", topo.ns(role), "link", "set", ifname, "up" if up else "down"])
    if up:
        for near in {role, *(_peer(role, ifname))}:
            routes = plan.ROUTES[near]
            lines = [f"route replace {dest} via {via}" for dest, via in routes]
            lines += [f"route replace {plan.twin(d)} via {plan.twin(v)}" for d, v in routes]
            run(["ip", "-n", topo.ns(near), "-batch", "-"], input_text="\n".join(lines) + "\n")


def _peer(role: str, ifname: str) -> tuple[str, ...]:
    """The role at the other end of ``role``'s link ``ifname``."""
    for left, left_if, _la, right, right_if, _ra in plan.LINKS:
        if (left, left_if) == (role, ifname):
            return (right,)
        if (right, right_if) == (role, ifname):
            return (left,)
    return ()

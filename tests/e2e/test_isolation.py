"""The lab is sealed: its namespaces connect only to each other, and nothing routes out."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.lab import addresses as plan
from tests.lab.checks import client
from tests.lab.lab import Lab

pytestmark = pytest.mark.lab

EXPECTED_LINKS = {role: {"lo"} for role in plan.ROLES}
for _left, _left_if, _la, _right, _right_if, _ra in plan.LINKS:
    EXPECTED_LINKS[_left].add(_left_if)
    EXPECTED_LINKS[_right].add(_right_if)


def _links(lab: Lab, role: str) -> list[dict[str, object]]:
    out = lab.run(role, ["ip", "-j", "-d", "link", "show"], check=True).stdout
    links: list[dict[str, object]] = json.loads(out)
    return links


def test_namespaces_hold_only_the_planned_links(lab: Lab) -> None:
    for role in plan.ROLES:
        links = _links(lab, role)
        assert {str(link["ifname"]) for link in links} == EXPECTED_LINKS[role], role
        for link in links:
            if link["ifname"] != "lo":
                info = link.get("linkinfo")
                assert isinstance(info, dict)
                assert info.get("info_kind") == "veth"
                assert "link_netnsid" in link, f"{role}/{link['ifname']} has no peer namespace"


def test_host_namespace_has_no_link_into_the_lab(lab: Lab) -> None:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True)
    host_links = json.loads(out.stdout)
    lab_ids = set()
    for role in plan.ROLES:
        ids = subprocess.run(
            ["ip", "-j", "netns", "list-id"], capture_output=True, text=True, check=True
        ).stdout
        lab_ids |= {
            e["nsid"] for e in json.loads(ids or "[]") if e.get("name") == lab.topo.ns(role)
        }
    assert not [link for link in host_links if link.get("link_netnsid") in lab_ids]


def test_net_namespace_has_no_default_route(lab: Lab) -> None:
    # `ip route get` consults the routing table only; nothing is sent.
    outside_v6 = ("2606:4700:4700::1111", "fd00::1", "2001:db8::1", "64:ff9b::101:101")
    for outside in ("1.1.1.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", *outside_v6):
        done = lab.run("net", ["ip", "route", "get", outside])
        assert done.returncode != 0, outside
        assert "unreachable" in done.stderr, outside


def test_agent_cannot_reach_the_host(lab: Lab) -> None:
    """The host's own addresses (the nearest thing outside) are unreachable from the agent.

    Only the host's own addresses are tried: even a leak would not put a packet on a real
    network. (CI hosts may number their uplink from 192.0.2.0/24 too; inside the sealed lab
    that is harmless, and exactly why a leak must be impossible.)
    """
    out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, check=True)
    assigned_in_lab = {ip for row in lab.table.rows for ip in (row.ip, row.ip6) if ip}
    for role in plan.ROLES:
        assigned_in_lab |= {a for ip in plan.LOCAL_ADDRESSES[role] for a in (ip, plan.twin(ip))}
    # Loopback and link-local addresses are every namespace's own, not the host's.
    host_addresses = [
        info["local"]
        for link in json.loads(out.stdout)
        for info in link.get("addr_info", [])
        if info.get("scope") == "global" and info["local"] not in assigned_in_lab
    ]
    assert host_addresses, "the host should have at least one non-loopback address"
    for address in host_addresses:
        for port in (22, 80, 443):
            result = client(lab, "agent", "tcp", ip=address, port=port)
            assert result["error"] in ("EHOSTUNREACH", "ENETUNREACH", "timeout"), (address, result)

"""Where the lab's routers and censors sit: the positions a trace must find (pure), and the
path itself, probed hop by hop from the agent's namespace in a running lab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.lab import addresses as plan
from tests.lab.checks import client
from tests.lab.lab import Lab
from tests.lab.positions import (
    ROUTER_TTL,
    SERVER_TTL,
    TRACEABLE,
    Position,
    benign_address,
    expected_position,
    router_address,
)
from tests.lab.scenarios import TECHNIQUES, load, parse

TABLE = load()
CPE, ISP, BORDER, TRANSIT = "100.64.1.1", "100.64.3.2", "100.64.2.2", "198.51.100.254"
ISP_PATH, BORDER_PATH = (CPE, ISP), (CPE, ISP, BORDER)
# The default table's traceable rows, and where a trace must find each: written out, not
# derived, so a change to the plan or the rules shows here.
EXPECTED = {
    "telegram.org": Position(4, BORDER, BORDER_PATH, "in"),  # ip-drop at the border
    "pashtunexpress.com": Position(3, ISP, ISP_PATH, "in"),  # ip-reset at the isp
    "x.com": Position(4, BORDER, BORDER_PATH, "in"),  # sni-reset
    "thebalochistanpost.com": Position(3, ISP, ISP_PATH, "in"),  # sni-drop
    "pmln.org.pk": Position(3, ISP, ISP_PATH, "in"),  # host-reset
    "balochistanvoices.com": Position(4, BORDER, BORDER_PATH, "in"),  # host-drop
    "ahmadiyya.org": Position(2, CPE, (CPE,), "in"),  # http-blockpage: the isp's proxy
    "voanews.com": Position(4, BORDER, BORDER_PATH, "in"),  # sni-fin
    "tribune.com.pk": Position(3, ISP, ISP_PATH, "in"),  # host-fin
    "hrw.org": Position(  # ip6-drop: the routers' IPv6 twins
        4, plan.twin(BORDER), tuple(plan.twin(a) for a in BORDER_PATH), "in"
    ),
    "digitalrightsfoundation.pk": Position(4, BORDER, BORDER_PATH, "on"),  # sni-onpath
}


def test_routers_and_the_server_are_numbered_along_the_path() -> None:
    assert ROUTER_TTL == {"cpe": 1, "isp": 2, "border": 3, "transit": 4}
    assert SERVER_TTL == 5
    addresses = [router_address(role) for role in plan.ROUTERS]
    assert addresses == [CPE, ISP, BORDER, TRANSIT]
    assert router_address("transit", 6) == "2001:db8:4::c633:64fe"
    assert benign_address() == plan.COLLECTOR
    assert benign_address(6) == plan.twin(plan.COLLECTOR)


@pytest.mark.parametrize(("role", "family"), [("agent", 4), ("net", 4), ("isp", 5)])
def test_only_routers_have_a_router_address(role: str, family: int) -> None:
    with pytest.raises(ValueError, match=r"not a router|family must be"):
        router_address(role, family)


def test_every_traceable_technique_has_a_row() -> None:
    assert set(TECHNIQUES) >= TRACEABLE
    assert {row.technique for row in TABLE.rows if row.technique in TRACEABLE} == TRACEABLE


@pytest.mark.parametrize("domain", sorted(EXPECTED))
def test_traceable_rows_are_found_where_their_censor_sits(domain: str) -> None:
    row = TABLE.domain(domain)
    assert row.technique in TRACEABLE
    assert expected_position(row) == EXPECTED[domain]


def test_other_rows_have_no_position() -> None:
    others = [row for row in TABLE.rows if row.domain not in EXPECTED]
    assert others
    assert all(expected_position(row) is None for row in others)


def _row(technique: str, hop: str) -> Any:
    rows = [
        {"domain": "example.com", "technique": "clean", "hop": "none", "expected": "ok"},
        {"domain": "a.org", "technique": technique, "hop": hop, "expected": "x.y"},
    ]
    return parse({"benign_domain": "example.com", "scenario": rows}, Path("t.toml")).rows[1]


def test_a_terminating_box_answers_one_hop_earlier_than_a_filter_at_its_hop() -> None:
    assert expected_position(_row("http-blockpage", "border")) == Position(3, ISP, ISP_PATH, "in")
    assert expected_position(_row("host-drop", "border")) == Position(4, BORDER, BORDER_PATH, "in")
    assert expected_position(_row("sni-onpath", "isp")) == Position(3, ISP, ISP_PATH, "on")


# -- the path in a running lab ----------------------------------------------------------

TIME_EXCEEDED = {4: (11, 0), 6: (3, 0)}
PORT_UNREACHABLE = {4: (3, 3), 6: (1, 4)}


def _probe(lab: Lab, ip: str, ttl: int, wait: float = 2.0) -> dict[str, Any]:
    return client(lab, "agent", "ttl_probe", ip=ip, ttl=ttl, wait=wait)


def _icmp(result: dict[str, Any]) -> tuple[Any, Any]:
    return result["icmp_type"], result["icmp_code"]


@pytest.mark.lab
@pytest.mark.parametrize("family", [4, 6])
def test_each_router_answers_at_its_ttl_from_its_address(lab: Lab, family: int) -> None:
    benign = lab.table.benign
    site = benign.ip if family == 4 else benign.ip6
    assert site is not None
    for role, ttl in ROUTER_TTL.items():
        result = _probe(lab, site, ttl)
        assert _icmp(result) == TIME_EXCEEDED[family], (role, result)
        assert result["source"] == router_address(role, family), (role, result)
    reached = _probe(lab, site, SERVER_TTL)
    assert _icmp(reached) == PORT_UNREACHABLE[family], reached
    assert reached["source"] == site


@pytest.mark.lab
def test_an_ip_drop_is_found_after_its_hop(lab: Lab) -> None:
    """The IP rows' censors, traced with datagrams: the last router answers at censor_ttl - 1,
    and from censor_ttl on nothing comes back."""
    for row in lab.table.by_technique("ip-drop") + lab.table.by_technique("ip6-drop"):
        position = expected_position(row)
        assert position is not None
        ip = row.ip6 if row.technique == "ip6-drop" else row.ip
        assert ip is not None
        before = _probe(lab, ip, position.censor_ttl - 1)
        assert before["source"] == position.after_hop, (row.domain, before)
        assert _probe(lab, ip, position.censor_ttl, wait=1.0)["error"] == "timeout", row.domain

"""The one address filter: what the collector may connect to (``may_reach``) and what a
resolver may not answer (``is_bogon``), over every class of address."""

from __future__ import annotations

import pytest

from agent.model.addresses import is_address, is_bogon, may_reach, parse_networks

# address, may_reach (nothing allowed), is_bogon
TABLE = [
    ("127.0.0.1", False, True),  # loopback
    ("127.255.255.254", False, True),
    ("::1", False, True),
    ("0.0.0.0", False, True),  # "this host": connect() reaches loopback
    ("0.1.2.3", False, True),
    ("::", False, True),
    ("10.0.0.5", False, True),  # RFC 1918
    ("172.16.0.1", False, True),
    ("172.31.255.255", False, True),
    ("192.168.1.1", False, True),
    ("169.254.169.254", False, True),  # link-local: cloud metadata services
    ("100.64.0.53", False, True),  # carrier-grade NAT
    ("192.0.0.1", False, True),  # IETF protocol assignments
    ("192.88.99.1", False, True),  # 6to4 relay anycast
    ("198.18.0.1", False, True),  # benchmarking
    ("198.19.255.254", False, True),
    ("224.0.0.1", False, True),  # multicast
    ("239.1.1.1", False, True),
    ("240.0.0.1", False, True),  # reserved
    ("255.255.255.255", False, True),
    ("::ffff:127.0.0.1", False, True),  # IPv4-mapped: judged by the IPv4 address
    ("::ffff:10.0.0.1", False, True),
    ("::ffff:169.254.169.254", False, True),
    ("64:ff9b::7f00:1", False, True),  # NAT64 of 127.0.0.1
    ("64:ff9b::a9fe:a9fe", False, True),  # NAT64 of 169.254.169.254
    ("64:ff9b:1::1", False, True),  # local-use NAT64
    ("::127.0.0.1", False, True),  # IPv4-compatible (deprecated)
    ("2002:7f00:1::1", False, True),  # 6to4 wrapping 127.0.0.1
    ("2002:808:808::1", False, True),  # 6to4 of anything: refused whole
    ("2001::1", False, True),  # Teredo
    ("100::1", False, True),  # discard-only
    ("fc00::1", False, True),  # unique local
    ("fd12:3456::1", False, True),
    ("fe80::1", False, True),  # link-local
    ("fe80::1%eth0", False, True),
    ("fec0::1", False, True),  # site-local
    ("ff02::1", False, True),  # multicast
    ("192.0.2.10", False, False),  # documentation: the lab's internet, routed nowhere
    ("198.51.100.8", False, False),
    ("203.0.113.80", False, False),
    ("2001:db8::1", False, False),
    ("::ffff:192.0.2.1", False, False),
    ("8.8.8.8", True, False),  # public
    ("1.1.1.1", True, False),
    ("93.184.216.34", True, False),
    ("172.32.0.1", True, False),  # just past 172.16.0.0/12
    ("100.128.0.1", True, False),  # just past 100.64.0.0/10
    ("2606:4700::1111", True, False),
    ("2a00:1450:4001::200e", True, False),
    ("::ffff:8.8.8.8", True, False),
    ("64:ff9b::8.8.8.8", True, False),  # NAT64 of a public address
    ("not-an-ip", False, False),
    ("", False, False),
    ("127.1", False, False),  # inet_aton's shorthand is a name here, never connected to
]


@pytest.mark.parametrize(("address", "reachable", "bogon"), TABLE)
def test_every_address_class(address: str, reachable: bool, bogon: bool) -> None:
    assert may_reach(address) is reachable
    assert is_bogon(address) is bogon


DOCUMENTATION = parse_networks(
    ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]
)


@pytest.mark.parametrize("address", ["192.0.2.10", "198.51.100.8", "203.0.113.80", "2001:db8::1"])
def test_documentation_ranges_are_reached_only_when_allowed(address: str) -> None:
    assert not may_reach(address)
    assert may_reach(address, DOCUMENTATION)
    assert not is_bogon(address)


def test_an_operator_may_allow_a_private_network() -> None:
    lan = parse_networks(["10.0.0.0/8"])
    assert may_reach("10.0.0.5", lan)
    assert may_reach("::ffff:10.0.0.5", lan)
    assert not may_reach("127.0.0.1", lan)
    assert not may_reach("192.168.1.1", lan)


def test_allowing_public_space_changes_nothing_else() -> None:
    assert may_reach("8.8.8.8", DOCUMENTATION)
    assert not may_reach("169.254.169.254", DOCUMENTATION)


@pytest.mark.parametrize(
    ("text", "address"),
    [("127.0.0.1", True), ("::ffff:127.0.0.1", True), ("fe80::1%eth0", True), ("8.8.8.8", True),
     ("127.1", False), ("0x7f000001", False), ("example.org", False), ("", False)],
)  # fmt: skip
def test_is_address_tells_literals_from_names(text: str, address: bool) -> None:
    assert is_address(text) is address


def test_parse_networks_takes_what_an_operator_writes() -> None:
    assert [str(n) for n in parse_networks([" 10.0.0.1/8", "192.0.2.7", "fd00::/8"])] == [
        "10.0.0.0/8",
        "192.0.2.7/32",
        "fd00::/8",
    ]
    with pytest.raises(ValueError, match="'nope' is not an IP network"):
        parse_networks(["10.0.0.0/8", "nope"])

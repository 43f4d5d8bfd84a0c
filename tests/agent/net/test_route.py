"""agent.net.route: whether the host has a route to an address, found without sending."""

from __future__ import annotations

import socket

import pytest

from agent.net.route import has_route


def test_loopback_is_routed() -> None:
    assert has_route("127.0.0.1")


def test_what_is_no_address_has_no_route() -> None:
    assert not has_route("not-an-address")
    assert not has_route("")


def test_ipv6_loopback_is_routed_where_the_host_has_ipv6() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        pytest.skip("this host has IPv6 disabled")
    assert has_route("::1")


def test_a_global_address_needs_a_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """No route fails the connect(); a link-local source reaches only its own link."""

    class NoRoute(socket.socket):
        def connect(self, address: object) -> None:
            raise OSError(101, "Network is unreachable")

    monkeypatch.setattr("agent.net.route.socket.socket", NoRoute)
    assert not has_route("2001:db8::1")

    class LinkLocal(socket.socket):
        def connect(self, address: object) -> None:
            pass

        def getsockname(self) -> tuple[str, int, int, int]:
            return ("fe80::1%eth0", 5000, 0, 2)

    monkeypatch.setattr("agent.net.route.socket.socket", LinkLocal)
    assert not has_route("2001:db8::1")
    assert has_route("fe80::2")

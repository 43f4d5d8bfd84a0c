"""agent.site: endpoints of both address families, interleaved within max_endpoints, IPv6
only where the host has a route; and the AAAA answer in what a control may tell."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from agent import site
from agent.model import failures
from agent.model.observations import DNSObservation, interleave
from tests.agent.observations import dns, system


def test_interleave_alternates_then_appends_the_rest() -> None:
    assert interleave(["a", "b", "c"], ["1"]) == ("a", "1", "b", "c")
    assert interleave([], ["1", "2"]) == ("1", "2")


def test_dns_addresses_cover_both_families() -> None:
    both = dataclasses.replace(
        dns("192.0.2.1", "192.0.2.2"), system6=system("2001:db8::1", "2001:db8::2")
    )
    assert both.addresses == ("192.0.2.1", "2001:db8::1", "192.0.2.2", "2001:db8::2")
    assert dns("192.0.2.1").addresses == ("192.0.2.1",)


@pytest.fixture
def routes(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The IPv6 addresses this 'host' has a route to; told once per process."""
    routed: set[str] = set()
    monkeypatch.setattr(site, "has_route", lambda ip: ip in routed)
    monkeypatch.setattr(site, "_told_unrouted", [])
    return routed


def test_endpoints_interleave_the_families_within_the_limit(routes: set[str]) -> None:
    routes |= {"2001:db8::1", "2001:db8::2"}
    found = ["192.0.2.1", "192.0.2.2", "192.0.2.1", "2001:db8::1", "2001:db8::2"]
    assert site._unique(found, 3) == ["192.0.2.1", "2001:db8::1", "192.0.2.2"]
    assert site._unique(found, 8) == ["192.0.2.1", "2001:db8::1", "192.0.2.2", "2001:db8::2"]


def test_ipv6_without_a_route_is_skipped_and_said_once(
    routes: set[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="netsonde.agent"):
        assert site._unique(["2001:db8::1", "192.0.2.1"], 4) == ["192.0.2.1"]
        assert site._unique(["2001:db8::2"], 4) == []
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1
    assert "no route to 2001:db8::1" in said[0]


def test_a_control_leaves_out_the_aaaa_addresses_it_may_not_reach() -> None:
    observed = DNSObservation(
        system=system("192.0.2.1"),
        public=(),
        system6=system("fd00::1", "2001:db8::1"),
    )
    redacted = site._redact(observed, lambda ip: ip.startswith(("192.0.2.", "2001:db8:")))
    assert redacted.system6 is not None
    assert redacted.system6.addresses == ("2001:db8::1",)
    inside = site._redact(observed, lambda ip: ip == "192.0.2.1")
    assert inside.system6 is not None
    assert (inside.system6.addresses, inside.system6.failure) == (
        (),
        failures.DNS_NON_PUBLIC_ANSWER,
    )

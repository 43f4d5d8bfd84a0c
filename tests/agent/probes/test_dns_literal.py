"""A target given as an IP address is never looked up: nothing is sent to any resolver."""

from __future__ import annotations

import asyncio

from agent.probes.dns import measure


def test_ip_literal_needs_no_resolver() -> None:
    # A resolv.conf that cannot be read would make any lookup fail: none must happen.
    observation = asyncio.run(
        measure("192.0.2.7", ["198.51.100.8"], resolv_conf="/nonexistent/resolv.conf")
    )
    assert observation.addresses == ("192.0.2.7",)
    assert observation.system.failure is None
    assert observation.system.nameservers == ()
    assert observation.public == ()

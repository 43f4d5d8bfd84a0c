"""The one bogon list, shared by the verdict and the collector."""

from __future__ import annotations

import pytest

from agent.model.bogons import is_bogon


@pytest.mark.parametrize(
    "address",
    ["10.10.34.34", "127.0.0.1", "100.64.0.53", "192.168.1.1", "0.0.0.0", "::1", "fe80::1",
     "::ffff:10.0.0.1", "239.1.1.1", "255.255.255.255"],
)  # fmt: skip
def test_bogons(address: str) -> None:
    assert is_bogon(address)


@pytest.mark.parametrize(
    "address", ["192.0.2.10", "198.51.100.8", "203.0.113.80", "8.8.8.8", "2001:db8::1", "nope"]
)
def test_public_documentation_and_garbage_are_not_bogons(address: str) -> None:
    assert not is_bogon(address)

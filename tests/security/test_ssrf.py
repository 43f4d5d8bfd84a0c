"""Security: the control is no SSRF vector (issue 21's reproductions, as regression tests).

Before the fix POST /api/v1/control connected to 127.0.0.1 (its own port included),
169.254.169.254, 10.0.0.5, 192.168.1.1, ::ffff:127.0.0.1 and 0.0.0.0, given as the URL's
address, as the answer of a name, or after DNS rebinding; its answer leaked the internal
page and DNS answer, and ``connection_refused`` against success mapped open ports. Each
test runs a real control measurement against a listener on 127.0.0.1 that must see no
connection (tests/security/test_control_harness.py shows it would).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from agent.model import failures
from agent.model.measurement import Vantage
from agent.wire.record import decode_vantage
from tests.security.test_control_harness import (
    World,
    listener,
    post_control,
    public_address,
    world,
)

INTERNAL = ["127.0.0.1", "::1", "0.0.0.0", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "10.0.0.5"]
INTERNAL += ["169.254.169.254", "192.168.1.1", "100.64.0.1", "198.18.0.1", "fe80::1"]
# Names the control's resolver answers with what an outsider must never make it reach.
INSIDE_NAMES = {
    "loop.test": [["127.0.0.1"]],
    "zero.test": [["0.0.0.0"]],
    "metadata.test": [["169.254.169.254"]],
    "lan.test": [["10.0.0.5", "192.168.1.1"]],
    "mixed.test": [["127.0.0.1", "192.168.1.1", "127.0.0.2"]],
}


async def vantage_of(w: World, body: dict[str, Any]) -> Vantage:
    response = await post_control(w.client, w.agent, body)
    assert response.status == 200, await response.text()
    return decode_vantage(await response.read())


def without_timing(v: Vantage) -> Vantage:
    """The vantage with every duration zeroed, to compare two answers for what they tell."""
    system = dataclasses.replace(v.dns.system, ms=0.0)
    six = v.dns.system6 and dataclasses.replace(v.dns.system6, ms=0.0)
    return dataclasses.replace(v, dns=dataclasses.replace(v.dns, system=system, system6=six))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "[::ffff:127.0.0.1]", "0.0.0.0", "[::1]", "[64:ff9b::7f00:1]", "127.0.0.2"],
)
async def test_an_internal_address_in_the_url_is_refused_before_any_work(
    tmp_path: Path, host: str
) -> None:
    async with listener("127.0.0.1") as inside, world(tmp_path, {}) as w:
        response = await post_control(
            w.client, w.agent, {"url": f"http://{host}:{inside.port}/admin"}
        )
        assert response.status == 400
        assert "may not be measured" in (await response.json())["error"]
        assert w.dns.queries == []
    assert inside.connections == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "https://[fe80::1%25lo]/",
    ],
)
async def test_metadata_and_lan_urls_are_refused(tmp_path: Path, url: str) -> None:
    async with world(tmp_path, {}) as w:
        response = await post_control(w.client, w.agent, {"url": url})
        assert response.status == 400, await response.text()


@pytest.mark.asyncio
async def test_the_collectors_own_port_is_refused(tmp_path: Path) -> None:
    async with world(tmp_path, {"self.test": [["127.0.0.1"]]}) as w:
        port = w.client.port
        for url in (f"http://127.0.0.1:{port}/api/v1/health", f"http://self.test:{port}/"):
            response = await post_control(w.client, w.agent, {"url": url})
            assert response.status in (200, 400)
            if response.status == 200:
                assert decode_vantage(await response.read()).endpoints == ()


@pytest.mark.asyncio
@pytest.mark.parametrize("name", sorted(INSIDE_NAMES))
async def test_a_name_resolving_inside_is_not_measured_nor_leaked(
    tmp_path: Path, name: str
) -> None:
    async with listener("127.0.0.1") as inside, world(tmp_path, INSIDE_NAMES) as w:
        seen = await vantage_of(w, {"url": f"http://{name}:{inside.port}/"})
        assert w.dns.queries == [name]
    assert inside.connections == 0
    assert seen.endpoints == ()
    assert seen.dns.system.addresses == ()  # the internal answer does not leave
    assert seen.dns.system.failure == failures.DNS_NON_PUBLIC_ANSWER
    # Nor where the collector's own resolver is (here on loopback).
    assert (seen.dns.system.nameservers, seen.dns.system.server) == ((), None)


@pytest.mark.asyncio
async def test_an_aaaa_answer_inside_is_not_measured_nor_leaked(tmp_path: Path) -> None:
    async with world(tmp_path, {"loop6.test": [["::1", "fd00::5"]]}) as w:
        seen = await vantage_of(w, {"url": "http://loop6.test:8080/"})
        assert w.dns.others == ["loop6.test"]  # the AAAA query
    assert seen.endpoints == ()
    six = seen.dns.system6
    assert six is not None
    assert (six.addresses, six.failure) == ((), failures.DNS_NON_PUBLIC_ANSWER)
    assert (six.nameservers, six.server) == ((), None)


@pytest.mark.asyncio
async def test_internal_addresses_from_the_agent_are_dropped(tmp_path: Path) -> None:
    host = public_address()
    async with (
        listener(host) as site,
        listener("127.0.0.1", site.port) as inside,
        world(tmp_path, {"site.test": [[host]]}) as w,
    ):
        seen = await vantage_of(w, {"url": f"http://site.test:{site.port}/", "addresses": INTERNAL})
    assert inside.connections == 0
    assert [e.ip for e in seen.endpoints] == [host]
    assert site.requests == ["GET / HTTP/1.1"]


@pytest.mark.asyncio
async def test_a_public_answer_keeps_only_its_public_addresses(tmp_path: Path) -> None:
    host = public_address()
    answers = {"site.test": [[host, "127.0.0.1", "10.0.0.5"]]}
    async with listener(host) as site, world(tmp_path, answers) as w:
        seen = await vantage_of(w, {"url": f"http://site.test:{site.port}/"})
    assert seen.dns.system.addresses == (host,)
    assert seen.dns.system.failure is None
    assert [e.ip for e in seen.endpoints] == [host]


@pytest.mark.asyncio
async def test_dns_rebinding_cannot_move_a_connection_inside(tmp_path: Path) -> None:
    """The name answers a public address, then (TTL 0) loopback. The control resolves once
    and connects to what it resolved: the HTTP request goes to the public address even
    though the name now points inside, and the next measurement refuses the inside answer."""
    host = public_address()
    async with (
        listener(host) as site,
        listener("127.0.0.1", site.port) as inside,
        world(tmp_path, {"rebind.test": [[host], ["127.0.0.1"]]}, control_ttl=0) as w,
    ):
        url = f"http://rebind.test:{site.port}/"
        first = await vantage_of(w, {"url": url})
        second = await vantage_of(w, {"url": url})
        assert w.dns.queries == ["rebind.test", "rebind.test"]
    assert [e.ip for e in first.endpoints] == [host]
    page = first.endpoints[0].http
    assert page is not None
    assert page.status == 200
    assert second.endpoints == ()
    assert inside.connections == 0


@pytest.mark.asyncio
async def test_open_and_closed_loopback_ports_answer_the_same(tmp_path: Path) -> None:
    """The port-scan oracle: nothing in the answer tells an open port from a closed one."""
    async with listener("127.0.0.1") as inside, world(tmp_path, INSIDE_NAMES) as w:
        async with listener("127.0.0.1") as closing:
            closed = closing.port
        by_address = []
        by_name = []
        for port in (inside.port, closed):
            response = await post_control(w.client, w.agent, {"url": f"http://127.0.0.1:{port}/"})
            by_address.append((response.status, await response.read()))
            by_name.append(
                without_timing(await vantage_of(w, {"url": f"http://loop.test:{port}/"}))
            )
    assert by_address[0] == by_address[1]
    assert by_address[0][0] == 400
    assert by_name[0] == by_name[1]
    assert inside.connections == 0

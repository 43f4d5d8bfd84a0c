"""Security tests of the control: the world they run in, and proof that it can see an attack.

The real collector app (real control measurements, SQLite) on a loopback test server; a DNS
server of our own on a loopback address, which the control's system resolver is pointed at
(``Settings.resolv_conf``); TCP servers that count every connection, on 127.0.0.1 (what the
control must never reach) and on 127.77.0.0/16 (a stand-in for the public internet, which
the tests allow with ``Settings.allowed_networks``). The tests here show that these
instruments catch what the other modules assert never happens.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from agent.api.auth import Credential, signed_headers
from agent.api.paths import CONTROL_PATH
from agent.model.addresses import parse_networks
from agent.net.dns import system_resolve
from collector.config import Settings
from collector.web.app import create_app
from tests.collector.app_client import enrolled

__all__ = ["Client", "Listener", "World", "listener", "post_control", "world"]

Client = TestClient[web.Request, web.Application]
PAGE = b"<html><title>inside</title>an internal page</html>"
# Our "public internet": loopback aliases the tests allow the control to reach.
PUBLIC_NET = "127.77.0.0/16"
PUBLIC = parse_networks([PUBLIC_NET])


class FakeDNS(asyncio.DatagramProtocol):
    """Answers A queries from ``answers``: name -> one list of addresses per query in turn,
    the last repeating (``[[public], [loopback]]`` is DNS rebinding); other names NXDOMAIN.
    TTL 0, as a rebinding attacker's. A queries get the IPv4 addresses and AAAA queries the
    IPv6 ones of the turn the A queries are at; ``queries`` lists the A queries' names (the
    turns), ``others`` the rest."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.queries: list[str] = []
        self.others: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None  # set once it is bound

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(self.reply(dns.message.from_wire(data)).to_wire(), addr)

    def reply(self, query: dns.message.Message) -> dns.message.Message:
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        (self.queries if question.rdtype == dns.rdatatype.A else self.others).append(name)
        reply = dns.message.make_response(query)
        turns = self.answers.get(name)
        if turns is None:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            six = question.rdtype == dns.rdatatype.AAAA
            kind = "AAAA" if six else "A"
            for ip in turns[max(1, min(self.queries.count(name), len(turns))) - 1]:
                if (":" in ip) == six:
                    reply.answer.append(dns.rrset.from_text(f"{name}.", 0, "IN", kind, ip))
        return reply


@dataclass
class Listener:
    """A TCP server that counts connections and answers each like an internal web page, or,
    as a tarpit, reads until the peer closes and never answers."""

    tarpit: bool = False
    connections: int = 0
    requests: list[str] = field(default_factory=list)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.tarpit:
                await reader.read()
                self.hung_up.set()
                return
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            writer.write(
                b"HTTP/1.1 200 OK\r\nServer: internal-admin\r\nContent-Type: text/html\r\n"
                + f"Content-Length: {len(PAGE)}\r\nConnection: close\r\n\r\n".encode()
                + PAGE
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def listener(host: str, port: int = 0, *, tarpit: bool = False) -> AsyncIterator[Listener]:
    seen = Listener(tarpit=tarpit)
    server = await asyncio.start_server(seen.handle, host, port)
    seen.port = server.sockets[0].getsockname()[1]
    try:
        yield seen
    finally:
        server.close()
        await server.wait_closed()


def public_address() -> str:
    return f"127.77.{random.randrange(256)}.{random.randrange(1, 255)}"


@asynccontextmanager
async def fake_dns(
    tmp_path: Path, answers: dict[str, list[list[str]]]
) -> AsyncIterator[tuple[FakeDNS, str]]:
    """The server and a resolv.conf naming it. Port 53 (resolv.conf has no port), on an
    address of its own so that other tests' servers do not collide with it."""
    loop = asyncio.get_running_loop()
    address = f"127.53.{random.randrange(1, 256)}.{random.randrange(2, 255)}"
    server = FakeDNS(answers)
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: server, local_addr=(address, 53), family=socket.AF_INET
        )
    except PermissionError:
        pytest.skip("a DNS server on port 53 needs root (or CAP_NET_BIND_SERVICE)")
    server.transport = transport
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text(f"nameserver {address}\n")
    try:
        yield server, str(resolv_conf)
    finally:
        transport.close()


@dataclass
class World:
    client: Client
    agent: Credential
    dns: FakeDNS


@asynccontextmanager
async def world(
    tmp_path: Path, answers: dict[str, list[list[str]]], **settings: Any
) -> AsyncIterator[World]:
    """The collector, its DNS server and one enrolled agent; ``settings`` override the
    collector's (a short probe timeout, and our public net allowed, by default)."""
    async with fake_dns(tmp_path, answers) as (server, resolv_conf):
        options: dict[str, Any] = {"timeout": 1.0, "allowed_networks": PUBLIC, **settings}
        app = create_app(
            Settings(
                db_url=f"sqlite:///{tmp_path}/collector.db", resolv_conf=resolv_conf, **options
            )
        )
        client: Client = TestClient(TestServer(app, host="127.0.0.1"))
        async with client:
            yield World(client, Credential(*await enrolled(client)), server)


async def post_control(
    client: Client,
    agent: Credential | None,
    body: Any,
    sign: Callable[[bytes], dict[str, str]] | None = None,
) -> ClientResponse:
    """POST /control as an agent would (``sign`` replaces the signature, for forgeries)."""
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if sign is not None:
        headers |= sign(data)
    elif agent is not None:
        headers |= signed_headers(agent, "POST", CONTROL_PATH, data)
    return await client.post(CONTROL_PATH, data=data, headers=headers)


# -- the instruments catch what the other tests say never happens ------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0", "::ffff:127.0.0.1"])
async def test_the_listener_sees_every_way_into_loopback(address: str) -> None:
    """0.0.0.0 and the IPv4-mapped form do reach a socket on 127.0.0.1: the filter must
    know them, and the listener would show a connection if the control made one."""
    async with listener("127.0.0.1") as seen:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        _, writer = await asyncio.open_connection(address, seen.port, family=family)
        writer.close()
        await writer.wait_closed()
        for _ in range(50):
            if seen.connections:
                break
            await asyncio.sleep(0.01)
        assert seen.connections == 1


@pytest.mark.asyncio
async def test_the_dns_server_answers_the_resolver_the_control_uses(tmp_path: Path) -> None:
    answers = {"rebind.test": [["127.77.0.9"], ["127.0.0.1"]]}
    async with fake_dns(tmp_path, answers) as (server, resolv_conf):
        first = await system_resolve("rebind.test", resolv_conf=resolv_conf)
        second = await system_resolve("rebind.test", resolv_conf=resolv_conf)
        missing = await system_resolve("other.test", resolv_conf=resolv_conf)
    assert (first.addresses, second.addresses) == (("127.77.0.9",), ("127.0.0.1",))
    assert missing.failure == "dns_nxdomain_error"
    assert server.queries == ["rebind.test", "rebind.test", "other.test"]


@pytest.mark.asyncio
async def test_an_allowed_network_is_measured_for_real(tmp_path: Path) -> None:
    """The control does connect where it may: the tests that show it does not are not
    passing because it never connects at all."""
    host = public_address()
    async with listener(host) as site, world(tmp_path, {"site.test": [[host]]}) as w:
        response = await post_control(
            w.client, w.agent, {"url": f"http://site.test:{site.port}/page?x=1"}
        )
        assert response.status == 200, await response.text()
    assert site.requests == ["GET /page HTTP/1.1"]

"""The far end's echoes as the protocol test uses them: a lease covers every port of its
address, the TCP echo serves leased addresses only, and the agent's probe gets every shape
back from a far end with no censor in the way (loopback)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.model.farend import UDP_HELLO, UDP_HELLO_OK
from agent.net.datagram import exchange
from agent.probes.protocols import ProtocolPlan, ProtocolPoint, measure, openvpn_hard_reset
from agent.verdict.protocols import decide_protocols
from collector.farend.config import FarendConfig
from collector.farend.rawecho import MAX_ECHO
from collector.farend.server import Farend

pytestmark = pytest.mark.asyncio

PLAN = ProtocolPlan(tries=2, interval=0.3, timeout=2.0)


async def _far_end(tmp_path: Path) -> Farend:
    config = FarendConfig(host="127.0.0.1", state_dir=tmp_path, tls_port=0, http_port=0, udp_port=0)
    farend = Farend(config)
    await farend.start()
    return farend


async def _tcp_echo(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    try:
        async with asyncio.timeout(2.0):
            return await reader.read(4096)
    finally:
        writer.close()


async def test_probe_gets_every_shape_back(tmp_path: Path) -> None:
    farend = await _far_end(tmp_path)
    try:
        token, _ = farend.signer.issue("agent-1")
        point = ProtocolPoint("127.0.0.1", farend.ports.udp, farend.ports.http, token)
        observed = await measure(point, "x.com", "example.com", None, PLAN)
    finally:
        await farend.stop()
    assert observed.failure is None
    assert len(observed.probes) == 9
    assert all(p.answered for p in observed.probes), observed.probes
    assert decide_protocols(observed).verdict == "ok"
    assert farend.allowance.used("agent-1") > 2 * 1200


async def test_a_bad_token_leases_nothing(tmp_path: Path) -> None:
    farend = await _far_end(tmp_path)
    try:
        point = ProtocolPoint("127.0.0.1", farend.ports.udp, farend.ports.http, "ns1.bad.1.x")
        observed = await measure(point, "x.com", "example.com", None, PLAN)
        echoed = await _tcp_echo(farend.ports.http, openvpn_hard_reset(tcp=True))
    finally:
        await farend.stop()
    assert observed.failure == "farend_udp_silent"
    assert not observed.probes
    assert decide_protocols(observed).verdict == "inconclusive"
    assert echoed == b""  # an unleased address's raw bytes are not echoed


async def test_a_lease_covers_the_address_and_the_tcp_echo_is_bounded(tmp_path: Path) -> None:
    farend = await _far_end(tmp_path)
    try:
        token, _ = farend.signer.issue("agent-2")
        udp = farend.ports.udp
        hello = await exchange("127.0.0.1", udp, UDP_HELLO + token.encode(), tries=1)
        other_port = await exchange("127.0.0.1", udp, b"\x05" * 40, tries=1)
        long = b"\x05" * (2 * MAX_ECHO)
        echoed = await _tcp_echo(farend.ports.http, long)
        http = await _tcp_echo(farend.ports.http, b"GET / HTTP/1.1\r\n\r\n")
    finally:
        await farend.stop()
    assert hello.answer == UDP_HELLO_OK
    assert other_port.answer == b"\x05" * 40  # a fresh socket, another port: still leased
    assert 0 < len(echoed) <= MAX_ECHO
    assert http.startswith(b"HTTP/1.1 401")  # a request still needs its token

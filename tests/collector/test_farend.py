"""The far end (``collector.farend``), a real server on loopback: it serves enrolled agents'
tokens only, keeps every agent within its daily bytes and its transfers at once, answers any
SNI and any Host, and the agent's own probe and transfers run through it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from agent.model.farend import UDP_HELLO, UDP_HELLO_OK
from agent.net.tcp import connect
from agent.net.tls import handshake
from agent.net.transfer import download, upload
from agent.probes.throttle import FarendPoint, ThrottlePlan, measure
from agent.verdict.throttle import decide_throttle
from collector.farend.config import FarendConfig
from collector.farend.server import Farend
from collector.farend.tokens import TokenSigner

pytestmark = pytest.mark.asyncio
LOOPBACK = "127.0.0.1"
WINDOW = 1.0


class Tally:
    """The far end's counts, as the collector's metrics would get them."""

    def __init__(self) -> None:
        self.refusals: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()

    def refused(self, reason: str) -> None:
        self.refusals[reason] += 1

    def moved(self, direction: str, nbytes: int) -> None:
        self.bytes[direction] += nbytes


def config(tmp_path: Path, **overrides: int) -> FarendConfig:
    values = {"tls_port": 0, "http_port": 0, "udp_port": 0, **overrides}
    return FarendConfig(host=LOOPBACK, state_dir=tmp_path, **values)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def farend(tmp_path: Path) -> AsyncIterator[tuple[Farend, Tally]]:
    tally = Tally()
    server = Farend(config(tmp_path, daily_bytes=2_000_000), tally)
    await server.start()
    try:
        yield server, tally
    finally:
        await server.stop()


async def plain_down(
    server: Farend, token: str, size: int, host: str = "x.com"
) -> tuple[int | None, int]:
    _, stream = await connect(LOOPBACK, server.ports.http)
    assert stream is not None
    seen = await download(stream, host, token, size, window=WINDOW, timeout=5)
    return seen.status, seen.bytes


async def test_no_token_a_forged_one_or_an_expired_one_is_refused(
    farend: tuple[Farend, Tally], tmp_path: Path
) -> None:
    server, tally = farend
    forged, _ = TokenSigner(b"another secret, not the far end's").issue("agent-1")
    expired, _ = server.signer.issue("agent-1", now=0)
    for token in ("", "garbage", forged, expired):
        assert await plain_down(server, token, 1000) == (401, 0)
    assert tally.refusals["token"] == 4
    assert tally.bytes["down"] == 0


async def test_a_valid_token_moves_exactly_what_it_asked_for(farend: tuple[Farend, Tally]) -> None:
    server, tally = farend
    token, _ = server.signer.issue("agent-1")
    assert await plain_down(server, token, 100_000) == (200, 100_000)
    _, stream = await connect(LOOPBACK, server.ports.http)
    assert stream is not None
    up = await upload(stream, "x.com", token, 50_000, window=WINDOW, timeout=5)
    assert (up.status, up.bytes, up.failure) == (200, 50_000, None)
    assert tally.bytes["down"] == 100_000
    assert tally.bytes["up"] == 50_000
    assert server.allowance.used("agent-1") == 150_000


async def test_the_daily_byte_cap_holds(farend: tuple[Farend, Tally]) -> None:
    """2 MB a day: 900 kB twice, then a third is refused whole, and a smaller one still fits."""
    server, tally = farend
    token, _ = server.signer.issue("agent-1")
    assert await plain_down(server, token, 900_000) == (200, 900_000)
    assert await plain_down(server, token, 900_000) == (200, 900_000)
    assert await plain_down(server, token, 900_000) == (429, 0)
    assert tally.refusals["cap"] == 1
    assert await plain_down(server, token, 150_000) == (200, 150_000)
    assert server.allowance.used("agent-1") == 1_950_000 <= server.config.daily_bytes
    other, _ = server.signer.issue("agent-2")  # a cap per agent, not one for all
    assert await plain_down(server, other, 900_000) == (200, 900_000)


async def test_an_agent_may_run_only_so_many_transfers_at_once(tmp_path: Path) -> None:
    tally = Tally()
    server = Farend(config(tmp_path, per_agent=1), tally)
    await server.start()
    try:
        token, _ = server.signer.issue("agent-1")
        # A slow upload holds the agent's one slot: its body never comes within the window.
        _, held = await connect(LOOPBACK, server.ports.http)
        assert held is not None
        head = f"POST /up/1000 HTTP/1.1\r\nHost: a\r\nX-Netsonde-Token: {token}\r\n"
        await held.send(
            f"{head}Content-Length: 1000\r\nX-Netsonde-Window-Ms: 5000\r\n\r\n".encode()
        )
        assert b"100 Continue" in await held.recv()
        assert await plain_down(server, token, 1000) == (503, 0)
        assert tally.refusals["busy"] == 1
        held.close()
    finally:
        await server.stop()


async def test_any_sni_completes_a_handshake_with_the_far_ends_own_certificate(
    farend: tuple[Farend, Tally],
) -> None:
    server, _ = farend
    token, _ = server.signer.issue("agent-1")
    for sni in ("youtube.com", "example.com", "not-a-real-name.invalid"):
        _, tcp = await connect(LOOPBACK, server.ports.tls)
        assert tcp is not None
        shake, stream = await handshake(tcp, sni)
        assert shake.failure is None
        assert stream is not None
        assert shake.issuer == "CN=netsonde far end"
        assert not shake.validated
        seen = await download(stream, sni, token, 20_000, window=WINDOW, timeout=5)
        assert (seen.status, seen.bytes) == (200, 20_000)


async def test_bad_requests_are_refused(farend: tuple[Farend, Tally]) -> None:
    server, tally = farend
    token, _ = server.signer.issue("agent-1")
    for request in (
        b"hello\r\n\r\n",
        f"GET /down/99999999999 HTTP/1.1\r\nX-Netsonde-Token: {token}\r\n\r\n".encode(),
        f"GET /elsewhere HTTP/1.1\r\nX-Netsonde-Token: {token}\r\n\r\n".encode(),
        f"POST /up/10 HTTP/1.1\r\nX-Netsonde-Token: {token}\r\nContent-Length: 9\r\n\r\n".encode(),
    ):
        reader, writer = await asyncio.open_connection(LOOPBACK, server.ports.http)
        writer.write(request)
        answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        writer.close()
    assert tally.refusals["request"] == 4


async def test_the_udp_echo_answers_leased_addresses_only(farend: tuple[Farend, Tally]) -> None:
    server, tally = farend
    token, _ = server.signer.issue("agent-1")
    loop = asyncio.get_running_loop()
    sock_reply: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
            if not sock_reply.done():
                sock_reply.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(
        Client, remote_addr=(LOOPBACK, server.ports.udp)
    )
    try:
        transport.sendto(b"not leased")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(sock_reply), 0.3)
        transport.sendto(UDP_HELLO + b"forged")
        await asyncio.sleep(0.1)
        assert tally.refusals["udp"] == 1
        assert tally.refusals["token"] == 1
        transport.sendto(UDP_HELLO + token.encode())
        assert await asyncio.wait_for(sock_reply, 2) == UDP_HELLO_OK
    finally:
        transport.close()


async def test_the_probe_through_an_unthrottled_far_end_says_ok(
    farend: tuple[Farend, Tally],
) -> None:
    server, _ = farend
    token, _ = server.signer.issue("agent-1")
    plan = ThrottlePlan(rounds=3, down_bytes=64 * 1024, up_bytes=32 * 1024, window=0.5)
    for trigger, port in (("sni", server.ports.tls), ("host", server.ports.http)):
        obs = await measure(
            FarendPoint(LOOPBACK, port, token), trigger, "x.com", "example.com", plan
        )
        assert len(obs.transfers) == 12
        assert all(t.status == 200 and t.failure is None for t in obs.transfers)
        assert decide_throttle(obs).verdict == "ok"

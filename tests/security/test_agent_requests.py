"""The agent's HTTP requests for what a test list may hold: a path that is not Latin-1 once
raised UnicodeEncodeError out of agent.net.http, and an IPv6 target went out with a Host
header without brackets. A real loopback server reads what the probe sends."""

from __future__ import annotations

import asyncio

import pytest

from agent.model.measurement import Target
from agent.net.http import round_trip
from agent.net.tcp import connect


async def _sent(host: str, path: str, address: str) -> bytes:
    """What ``round_trip`` puts on the wire, read by a server on ``address``."""
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.set_result(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, address, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        observation, stream = await connect(address, port, timeout=5)
        assert stream is not None, observation
        trip = await round_trip(stream, host, path, timeout=5)
        assert (trip.status, trip.failure) == (200, None)
        return await asyncio.wait_for(received, 5)
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_a_path_beyond_latin_1_goes_out_percent_encoded() -> None:
    head = await _sent("x.test", "/новости/中文?q=ü", "127.0.0.1")
    assert head.startswith(b"GET /%D0%BD%D0%BE%D0%B2%D0%BE%D1%81%D1%82%D0%B8/%E4%B8%AD%E6%96%87")
    assert b"?q=%C3%BC HTTP/1.1\r\n" in head


@pytest.mark.asyncio
async def test_an_ipv6_target_names_its_host_in_brackets() -> None:
    head = await _sent("::1", "/", "::1")
    assert b"\r\nHost: [::1]\r\n" in head


def test_targets_keep_brackets_and_encode_their_paths() -> None:
    target = Target.parse("http://[2001:db8::1]:8080/ü?q=é")
    assert target.url == "http://[2001:db8::1]:8080/%C3%BC?q=%C3%A9"
    assert (target.host, target.port, target.path) == ("2001:db8::1", 8080, "/%C3%BC?q=%C3%A9")
    assert Target.parse(target.url) == target  # normalising twice changes nothing
    assert Target.parse("https://x.test/a%20b").path == "/a%20b"  # escapes stay as they are

"""Agent API, the fingerprints client, against real aiohttp servers: the collector's app
serving the shared OONI CSVs, and small hostile ones (endless, gzip bombs, wrong content)."""

from __future__ import annotations

import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.api.fingerprints import NOT_MODIFIED, FingerprintsAnswer, fetch_fingerprints
from agent.api.paths import FINGERPRINTS_PATH, MAX_FINGERPRINTS_BYTES
from agent.fingerprints import load
from collector.config import Settings
from tests.collector.app_client import running
from tests.shared_data import shared_file

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Sent = list[int]  # body bytes written, one entry per request
HEADER = b"name,scope,location_found,pattern_type,pattern\r\n"


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A server on loopback answering the fingerprints path with ``handler``; its URL."""
    app = web.Application()
    app.router.add_get(FINGERPRINTS_PATH, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def _fetch(*urls: str, etag: str | None = None) -> tuple[FingerprintsAnswer | str, int]:
    spent = 0

    async def spend(nbytes: int) -> None:
        nonlocal spent
        spent += nbytes

    async with aiohttp.ClientSession() as session:
        return await fetch_fingerprints(session, urls, etag, spend=spend), spent


@pytest.mark.asyncio
async def test_fetches_from_the_collector_then_revalidates(tmp_path: Path) -> None:
    paths = [shared_file("fingerprints-http.csv"), shared_file("fingerprints-dns.csv")]
    settings = Settings(db_url=f"sqlite:///{tmp_path}/c.db", fingerprints=tuple(map(str, paths)))
    async with running(settings) as client:
        url = str(client.make_url("")).rstrip("/")
        answer, spent = await _fetch(url)
        assert isinstance(answer, FingerprintsAnswer)
        assert answer.fingerprints.fingerprints == load(paths).fingerprints
        assert (answer.source, spent) == (url, len(answer.csv.encode()))
        assert answer.etag
        again, spent = await _fetch(url, etag=answer.etag)
        assert (again, spent) == (NOT_MODIFIED, 0)
        # A tag the collector no longer has: the set again.
        changed, _ = await _fetch(url, etag='"gone"')
        assert isinstance(changed, FingerprintsAnswer)


def _endless(sent: Sent, *, declare: bool) -> Handler:
    """Rows of 64 kB for as long as the agent reads, up to 64 times the cap; with
    ``declare``, a Content-Length saying so."""
    total = 64 * MAX_FINGERPRINTS_BYTES

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/csv"})
        if declare:
            response.content_length = total
        await response.prepare(request)
        sent.append(0)
        row = b"x,isp,body,contains," + b"p" * 65_000 + b"\r\n"
        try:
            await response.write(HEADER)
            while sent[-1] < total:
                await response.write(row)
                sent[-1] += len(row)
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass  # the agent hung up: what the test wants
        return response

    return handler


@pytest.mark.parametrize("declare", [False, True])
@pytest.mark.asyncio
async def test_an_endless_answer_is_abandoned_at_the_cap(declare: bool) -> None:
    sent: Sent = []
    async with serving(_endless(sent, declare=declare)) as url:
        answer, spent = await _fetch(url)
    assert answer == f"{url}: answer over {MAX_FINGERPRINTS_BYTES} bytes"
    assert spent == MAX_FINGERPRINTS_BYTES  # the budget is charged the cap, not the claim
    assert sent[0] < 8 * MAX_FINGERPRINTS_BYTES, sent  # the agent hung up


@pytest.mark.asyncio
async def test_a_gzip_bomb_stops_at_the_cap_unpacked() -> None:
    bomb = gzip.compress(HEADER + b"a" * (4 * MAX_FINGERPRINTS_BYTES))

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Encoding": "gzip"}
        return web.Response(body=bomb, content_type="text/csv", headers=headers)

    assert len(bomb) < MAX_FINGERPRINTS_BYTES // 100
    async with serving(handler) as url:
        answer, _ = await _fetch(url)
    assert answer == f"{url}: answer over {MAX_FINGERPRINTS_BYTES} bytes"


@pytest.mark.parametrize(
    ("status", "content_type", "body", "failure"),
    [
        (200, "text/html", b"<html>Log in to the hotel wifi</html>", "(text/html)"),
        (200, "text/csv", b"url,category_code\r\nhttps://x.org/,NEWS\r\n", "header lacks"),
        (200, "text/csv", HEADER + b"\xff\xfe\r\n", "not UTF-8"),
        (404, "application/json", b'{"error": "no such path"}', "HTTP 404"),
        (304, "text/csv", b"", "HTTP 304"),  # not asked conditionally: no such answer
        (500, "text/plain", b"oops", "HTTP 500"),
    ],
)
@pytest.mark.asyncio
async def test_what_is_no_fingerprint_list_is_a_failure(
    status: int, content_type: str, body: bytes, failure: str
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body or None, content_type=content_type)

    async with serving(handler) as url:
        answer, _ = await _fetch(url)
    assert isinstance(answer, str)
    assert answer.startswith(f"{url}: ")
    assert failure in answer


@pytest.mark.asyncio
async def test_each_collector_url_is_tried_in_turn() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, not listening

        async def handler(request: web.Request) -> web.StreamResponse:
            body = HEADER + b"ok,isp,body,contains,blocked\r\n"
            return web.Response(body=body, content_type="text/csv", headers={"ETag": '"1"'})

        async with serving(handler) as url:
            answer, _ = await _fetch(dead, url)
            assert isinstance(answer, FingerprintsAnswer)
            assert (answer.source, answer.etag, len(answer.fingerprints)) == (url, '"1"', 1)
        failed, _ = await _fetch(dead, dead + "0")
    assert isinstance(failed, str)
    assert failed.startswith(f"{dead}: ")
    assert f"; {dead}0: " in failed

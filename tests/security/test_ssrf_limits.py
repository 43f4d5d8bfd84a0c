"""Security: the control's work is bounded (issue 21's reproductions, as regression tests).

Before the fix an outsider could make the collector measure 5,000 distinct URLs at 775 a
second (no rate limit, a cache key with the query string), and 300 abandoned requests
kept measuring after their clients hung up, pushing a legitimate control from 7 ms to
15.7 s. Real control measurements against loopback servers, as in test_ssrf.py.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.api.auth import Credential, signed_headers
from agent.api.paths import CACHE_HEADER, CONTROL_PATH, ENROLL_PATH
from agent.wire.keys import public_key_bytes
from collector.cli import serve
from collector.config import Settings
from collector.storage import open_storage
from tests.collector.app_client import enrolled
from tests.security.test_control_harness import (
    PUBLIC,
    fake_dns,
    listener,
    post_control,
    public_address,
    world,
)


@pytest.mark.asyncio
async def test_past_its_burst_an_agent_gets_429(tmp_path: Path) -> None:
    host = public_address()
    async with (
        listener(host) as site,
        world(tmp_path, {"site.test": [[host]]}, control_rate=0.01, control_burst=3) as w,
    ):
        url = f"http://site.test:{site.port}/"
        statuses = [(await post_control(w.client, w.agent, {"url": url})).status for _ in range(3)]
        refused = await post_control(w.client, w.agent, {"url": f"{url}other"})
        assert statuses == [200, 200, 200]
        assert refused.status == 429
        assert (await refused.json())["reason"] == "rate"
        assert int(refused.headers["Retry-After"]) >= 1
        assert w.dns.queries == ["site.test"]  # the refused request started nothing
        # Per agent: another one still gets its answer.
        other = Credential(*await enrolled(w.client))
        assert (await post_control(w.client, other, {"url": url})).status == 200


@pytest.mark.asyncio
async def test_urls_differing_only_in_the_query_share_one_measurement(tmp_path: Path) -> None:
    host = public_address()
    async with listener(host) as site, world(tmp_path, {"site.test": [[host]]}) as w:
        caches = []
        for query in ("?a=1", "?a=2", "?b", "", "?a=1#top"):
            url = f"http://site.test:{site.port}/page{query}"
            response = await post_control(w.client, w.agent, {"url": url})
            assert response.status == 200
            caches.append(response.headers[CACHE_HEADER])
        assert caches == ["miss", "hit", "hit", "hit", "hit"]
        assert w.dns.queries == ["site.test"]
    assert site.requests == ["GET /page HTTP/1.1"]


@pytest.mark.asyncio
async def test_a_measurement_past_its_deadline_is_504_and_stops(tmp_path: Path) -> None:
    host = public_address()
    async with (
        listener(host, tarpit=True) as tarpit,
        world(tmp_path, {"slow.test": [[host]]}, timeout=30.0, control_deadline=0.5) as w,
    ):
        started = time.monotonic()
        response = await post_control(
            w.client, w.agent, {"url": f"http://slow.test:{tarpit.port}/"}
        )
        assert response.status == 504
        assert (await response.json())["reason"] == "deadline"
        assert time.monotonic() - started < 15  # the probe alone would take its 30 s
        await asyncio.wait_for(tarpit.hung_up.wait(), 5)  # the probe let go of the site


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def enrol(session: aiohttp.ClientSession, url: str, db_url: str) -> Credential:
    storage = open_storage(db_url)
    try:
        token = storage.create_enroll_token("test", 60_000, int(time.time() * 1000))
    finally:
        storage.close()
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(public_key_bytes(key)).decode()
    async with session.post(url + ENROLL_PATH, json={"token": token, "public_key": public}) as r:
        assert r.status == 201, await r.text()
        return Credential((await r.json())["agent_id"], key)


@pytest.mark.asyncio
async def test_a_client_hanging_up_stops_its_measurement(tmp_path: Path) -> None:
    """The collector as ``netsonde-collector serve`` runs it: abandoned requests do not
    keep measuring (each would hold a connection to the site for the probe's timeout)."""
    host = public_address()
    async with (
        listener(host, tarpit=True) as tarpit,
        fake_dns(tmp_path, {"slow.test": [[host]]}) as (_, resolv_conf),
    ):
        settings = Settings(
            port=free_port(),
            db_url=f"sqlite:///{tmp_path}/collector.db",
            resolv_conf=resolv_conf,
            allowed_networks=PUBLIC,
            timeout=30.0,
        )
        server = asyncio.ensure_future(serve(settings))
        try:
            async with aiohttp.ClientSession() as session:
                await until_listening(session, settings.url)
                agent = await enrol(session, settings.url, settings.db_url)
                body = f'{{"url": "http://slow.test:{tarpit.port}/"}}'.encode()
                headers = signed_headers(agent, "POST", CONTROL_PATH, body)
                with pytest.raises(TimeoutError):
                    async with session.post(
                        settings.url + CONTROL_PATH,
                        data=body,
                        headers={**headers, "Content-Type": "application/json"},
                        timeout=aiohttp.ClientTimeout(total=1.0),
                    ):
                        pass
                assert tarpit.connections == 1
                await asyncio.wait_for(tarpit.hung_up.wait(), 5)
        finally:
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)


async def until_listening(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(100):
        try:
            async with session.get(url + "/api/v1/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    pytest.fail(f"the collector did not listen at {url}")

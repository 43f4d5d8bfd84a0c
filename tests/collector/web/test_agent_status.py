"""The agent's status end to end: the uploader tells the real collector its version, what
else waits in its spool and its evictions; the operator's agent list shows them, as of the
last batch. A collector older than those keys refuses them: the uploader sends the batch
again without them, and loses nothing; a record refused whatever the keys does not stop
them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import __version__
from agent.api.paths import AGENTS_PATH
from agent.wire.record import decode_measurement, encode_measurement
from collector.config import Settings
from tests.collector.app_client import enrolled, operator, recent, running
from tests.collector.web.test_agent_upload import FakeSpool, uploader


async def agents(client: Any) -> list[dict[str, Any]]:
    response = await client.get(AGENTS_PATH, headers=operator(client))
    assert response.status == 200, await response.text()
    found: list[dict[str, Any]] = (await response.json())["agents"]
    return found


@pytest.mark.asyncio
async def test_the_operator_sees_what_the_last_batch_said(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        agent_id, key = await enrolled(client)
        url = str(client.server.make_url(""))
        (before,) = await agents(client)
        assert {
            k: before[k] for k in ("last_batch_ms", "version", "spool_records")
        } == dict.fromkeys(("last_batch_ms", "version", "spool_records"))
        now = int(time.time() * 1000)
        checks = [(now - 2000, True), (now - 1000, True)]
        spool = FakeSpool([encode_measurement(m) for m in recent(25)], evicted=3, checks=checks)
        async with uploader([url], agent_id, key, batch_size=10) as up:
            first = await up.upload_once(spool)
            assert (first.acknowledged, first.checks_acknowledged) == (10, 2)
            (after,) = await agents(client)
            assert after["version"] == __version__
            # 15 records behind the first batch; its checks went with it.
            assert (after["spool_records"], after["spool_checks"], after["evictions"]) == (15, 0, 3)
            assert after["last_batch_ms"] >= now
            await up.drain(spool, asyncio.Event())
        (drained,) = await agents(client)
        assert (drained["spool_records"], drained["spool_checks"]) == (0, 0)
        # The public API never names an agent.
        assert (await client.get(AGENTS_PATH)).status == 401


Refuses = Callable[[dict[str, Any], list[str]], bool]


@asynccontextmanager
async def fake_collector(
    bodies: list[dict[str, Any]], refuses: Refuses
) -> AsyncIterator[TestServer]:
    """A collector that keeps every batch body it is sent and takes the batch whole unless
    ``refuses(body, measurement ids)``, then a 400 "schema"."""

    async def measurements(request: web.Request) -> web.Response:
        body = msgpack.unpackb(msgpack.unpackb(await request.read())["b"])
        bodies.append(body)
        ids = [decode_measurement(msgpack.packb(m)).id for m in body["m"]]
        if refuses(body, ids):
            return web.json_response({"error": "refused", "reason": "schema"}, status=400)
        return web.json_response(
            {"stored": ids, "duplicates": [], "checks": len(body.get("c", []))}
        )

    app = web.Application()
    app.router.add_post("/api/v1/measurements", measurements)
    server = TestServer(app)
    async with server:
        yield server


@pytest.mark.asyncio
async def test_a_collector_older_than_the_status_keys_gets_batches_without_them() -> None:
    """As a collector before them refuses a body key it does not know (a 400, "schema")."""
    bodies: list[dict[str, Any]] = []
    async with fake_collector(bodies, lambda body, ids: bool({"q", "r"} & set(body))) as server:
        spool = FakeSpool([encode_measurement(m) for m in recent(6)])
        async with uploader(
            [str(server.make_url(""))], "ag-test", Ed25519PrivateKey.generate(), batch_size=3
        ) as up:
            first = await up.upload_once(spool)
            assert (first.acknowledged, first.dropped, first.failure) == (3, [], None)
            second = await up.upload_once(spool)
            assert (second.acknowledged, second.dropped, second.failure) == (3, [], None)
    assert spool.entries == []
    # One refusal, then the same records again without the status, and so on after it.
    assert [sorted({"q", "r"} & set(body)) for body in bodies] == [["q", "r"], [], []]
    assert [len(body["m"]) for body in bodies] == [3, 3, 3]


@pytest.mark.asyncio
async def test_a_record_refused_whatever_the_keys_does_not_stop_the_status() -> None:
    measurements = recent(4)
    poison = measurements[1].id
    bodies: list[dict[str, Any]] = []
    async with fake_collector(bodies, lambda body, ids: poison in ids) as server:
        spool = FakeSpool([encode_measurement(m) for m in measurements])
        async with uploader(
            [str(server.make_url(""))], "ag-test", Ed25519PrivateKey.generate(), batch_size=2
        ) as up:
            total = await up.drain(spool, asyncio.Event())
    assert (total.acknowledged, len(total.dropped), total.failure) == (3, 1, None)
    # The last batch, after the poison record was dropped, still says the status.
    assert {"q", "r"} <= set(bodies[-1])

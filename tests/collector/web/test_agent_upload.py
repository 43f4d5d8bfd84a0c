"""The agent's uploader against the real collector app on SQLite: everything acknowledged
is stored, nothing is deleted unacknowledged, dead URLs are skipped, a poison record is
isolated and dropped, and ``stop`` ends a drain in backoff."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from agent.daemon.upload import BAD_RESPONSE, REVOKED, UNAUTHORIZED, UNREACHABLE, Backoff, Uploader
from agent.wire.record import encode_measurement
from collector.config import Settings
from collector.storage.schema import connectivity
from collector.web.keys import STORAGE
from tests.collector.app_client import enrolled, recent, running


@dataclass(frozen=True)
class Entry:
    seq: int
    id: str
    record: bytes


class FakeSpool:
    """An in-memory stand-in for ``agent.daemon.spool``, oldest first, that remembers every ack."""

    def __init__(
        self, records: Sequence[bytes], evicted: int = 0, checks: Sequence[tuple[int, bool]] = ()
    ) -> None:
        self.entries = [Entry(i, f"r{i}", rec) for i, rec in enumerate(records)]
        self.acked: list[str] = []
        self.evicted = evicted
        self.checks = sorted(checks)
        self.acked_checks: list[int] = []

    async def peek_async(self, limit: int) -> list[Entry]:
        return self.entries[:limit]

    async def ack_async(self, ids: Sequence[str]) -> None:
        gone = set(ids)
        self.acked += ids
        self.entries = [e for e in self.entries if e.id not in gone]

    async def evictions_async(self) -> int:
        return self.evicted

    async def backlog_async(self) -> tuple[int, int]:
        return len(self.entries), len(self.checks)

    async def peek_checks_async(self, limit: int) -> list[tuple[int, bool]]:
        return self.checks[:limit]

    async def ack_checks_async(self, times: Sequence[int]) -> None:
        gone = set(times)
        self.acked_checks += times
        self.checks = [c for c in self.checks if c[0] not in gone]

    async def goodput_async(self, times: Sequence[int]) -> dict[int, int]:
        return {}  # no goodput samples: the checks travel as [ms, online]


def spool_of(n: int) -> FakeSpool:
    return FakeSpool([encode_measurement(m) for m in recent(n)])


def dead_url() -> str:
    """A port on 127.0.0.1 that nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def uploader(urls: list[str], agent_id: str, key: Ed25519PrivateKey, **kw: object) -> Uploader:
    seq = itertools.count(1)
    backoff = Backoff(base=0.01, cap=0.05, rng=random.Random(0))
    return Uploader(urls, agent_id, key, next_seq=lambda: next(seq), backoff=backoff, timeout=5,
                    **kw)  # type: ignore[arg-type]  # fmt: skip


@pytest.mark.asyncio
async def test_drain_uploads_everything_and_repeats_are_duplicates(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        agent_id, key = await enrolled(client)
        url = str(client.server.make_url(""))
        spool = spool_of(25)
        records = [e.record for e in spool.entries]
        async with uploader([url], agent_id, key, batch_size=10) as up:
            total = await up.drain(spool, asyncio.Event())
            assert (total.acknowledged, total.dropped, total.failure) == (25, [], None)
            assert (spool.entries, len(spool.acked)) == ([], 25)
            assert client.app[STORAGE].count_measurements() == 25

            again = FakeSpool(records)  # e.g. a crash between the upload and the ack
            result = await up.upload_once(again)
            assert (result.sent, result.acknowledged, result.failure) == (10, 10, None)
            total = await up.drain(again, asyncio.Event())
            assert (again.entries, total.acknowledged) == ([], 15)
        assert client.app[STORAGE].count_measurements() == 25


@pytest.mark.asyncio
async def test_a_dead_first_url_rotates_to_the_second(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        agent_id, key = await enrolled(client)
        good = str(client.server.make_url(""))
        spool = spool_of(5)
        async with uploader([dead_url(), good], agent_id, key) as up:
            first = await up.upload_once(spool)
            assert (first.failure, first.acknowledged, len(spool.entries)) == (UNREACHABLE, 0, 5)
            assert up.current_url == good.rstrip("/")
            total = await up.drain(spool, asyncio.Event())
        assert (total.failure, total.acknowledged, spool.entries) == (None, 5, [])
        assert client.app[STORAGE].count_measurements() == 5


@pytest.mark.asyncio
async def test_revoked_and_unknown_agents_ack_nothing(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        agent_id, key = await enrolled(client)
        url = str(client.server.make_url(""))
        spool = spool_of(3)
        async with uploader([url], "ag-000000000000", key) as up:
            result = await up.upload_once(spool)
            assert (result.failure, result.acknowledged) == (UNAUTHORIZED, 0)
        assert client.app[STORAGE].revoke_agent(agent_id, int(time.time() * 1000))
        async with uploader([url], agent_id, key) as up:
            result = await up.upload_once(spool)
            assert (result.failure, result.acknowledged, result.dropped) == (REVOKED, 0, [])
        assert (len(spool.entries), spool.acked) == (3, [])
        assert client.app[STORAGE].count_measurements() == 0


@pytest.mark.asyncio
async def test_a_poison_record_is_isolated_and_dropped(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        agent_id, key = await enrolled(client)
        url = str(client.server.make_url(""))
        measurements = recent(12)
        old = int(time.time() * 1000) - 40 * 86_400_000  # past the collector's 30 days
        measurements[7] = dataclasses.replace(measurements[7], started_ms=old)
        spool = FakeSpool([encode_measurement(m) for m in measurements], evicted=4)
        async with uploader([url], agent_id, key) as up:
            total = await up.drain(spool, asyncio.Event())
        assert (total.failure, total.acknowledged, total.dropped) == (None, 11, ["r7"])
        assert spool.entries == []
        assert client.app[STORAGE].count_measurements() == 11


@pytest.mark.asyncio
async def test_a_wrong_key_never_drops_records(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        agent_id, _ = await enrolled(client)
        url = str(client.server.make_url(""))
        spool = spool_of(4)
        async with uploader([url], agent_id, Ed25519PrivateKey.generate()) as up:
            result = await up.upload_once(spool)
        assert (result.failure, result.dropped) == ("upload_http_400", [])
        assert len(spool.entries) == 4


@pytest.mark.asyncio
async def test_stop_ends_drain_promptly_during_backoff() -> None:
    spool = spool_of(3)
    up = Uploader([dead_url()], "ag-test", Ed25519PrivateKey.generate(), next_seq=lambda: 1,
                  backoff=Backoff(base=60.0, cap=60.0, rng=random.Random(0)))  # fmt: skip
    up.backoff.next_delay = lambda: 60.0  # type: ignore[method-assign]  # never a lucky 0
    stop = asyncio.Event()
    async with up:
        task = asyncio.create_task(up.drain(spool, stop))
        await asyncio.sleep(0.3)
        assert not task.done()
        started = time.monotonic()
        stop.set()
        total = await asyncio.wait_for(task, 2.0)
    assert time.monotonic() - started < 1.0
    assert (total.failure, len(spool.entries)) == (UNREACHABLE, 3)


def stored_checks(client: object) -> list[tuple[str, int, bool]]:
    storage = client.app[STORAGE]  # type: ignore[attr-defined]
    with storage.engine.connect() as conn:
        rows = conn.execute(
            select(connectivity.c.agent_id, connectivity.c.ms, connectivity.c.online).order_by(
                connectivity.c.ms
            )
        )
        return [(a, int(ms), bool(online)) for a, ms, online in rows]


@pytest.mark.asyncio
async def test_checks_go_in_heartbeat_only_batches_and_with_records(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        agent_id, key = await enrolled(client)
        url = str(client.server.make_url(""))
        now = int(time.time() * 1000)
        checks = [(now - 600_000, True), (now - 300_000, False), (now - 1000, True)]
        heartbeat = FakeSpool([], checks=checks)
        async with uploader([url], agent_id, key) as up:
            total = await up.drain(heartbeat, asyncio.Event())
            assert (total.failure, total.sent, total.checks_acknowledged) == (None, 0, 3)
            assert (heartbeat.checks, sorted(heartbeat.acked_checks)) == (
                [],
                [c[0] for c in checks],
            )
            assert stored_checks(client) == [(agent_id, ms, online) for ms, online in checks]

            # With records: one batch carries both; a repeat (no ack reached the spool) is
            # stored once, and acknowledged again.
            later = [(now - 200_000, False), (now - 100_000, True)]
            both = FakeSpool([encode_measurement(m) for m in recent(4)], checks=later)
            again = FakeSpool([], checks=later)
            total = await up.drain(both, asyncio.Event())
            assert (total.acknowledged, total.checks_acknowledged, total.failure) == (4, 2, None)
            assert total.checks_sent == 2  # in one batch with the records
            result = await up.upload_once(again)
            assert (result.checks_acknowledged, result.failure, again.checks) == (2, None, [])
        assert len(stored_checks(client)) == 5
        assert client.app[STORAGE].count_measurements() == 4


@pytest.mark.asyncio
async def test_checks_only_sends_heartbeats_and_keeps_the_records(tmp_path: Path) -> None:
    """What the daemon does over its bandwidth budget: the checks go, the records wait."""
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        agent_id, key = await enrolled(client)
        url = str(client.server.make_url(""))
        now = int(time.time() * 1000)
        checks = [(now - 2000, False), (now - 1000, True)]
        spool = FakeSpool([encode_measurement(m) for m in recent(3)], checks=checks)
        async with uploader([url], agent_id, key) as up:
            up.checks_only = True
            total = await up.drain(spool, asyncio.Event())
            assert (total.failure, total.sent, total.checks_acknowledged) == (None, 0, 2)
            assert (len(spool.entries), spool.acked, spool.checks) == (3, [], [])
            up.checks_only = False
            total = await up.drain(spool, asyncio.Event())
            assert (total.failure, total.acknowledged, spool.entries) == (None, 3, [])
        assert stored_checks(client) == [(agent_id, ms, online) for ms, online in checks]
        assert client.app[STORAGE].count_measurements() == 3


@pytest.mark.asyncio
async def test_bad_checks_are_dropped_without_losing_records(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        agent_id, key = await enrolled(client)
        url = str(client.server.make_url(""))
        now = int(time.time() * 1000)
        future = now + 3_600_000  # a clock that ran ahead: the collector refuses it
        stale = now - 40 * 86_400_000  # past the collector's 30 days: dropped unsent
        checks = [(stale, True), (now - 5000, False), (future, True)]
        spool = FakeSpool([encode_measurement(m) for m in recent(3)], checks=checks)
        async with uploader([url], agent_id, key) as up:
            total = await up.drain(spool, asyncio.Event())
        assert (total.failure, total.acknowledged, total.dropped) == (None, 3, [])
        assert (total.checks_acknowledged, total.checks_dropped) == (1, 2)
        assert (spool.entries, spool.checks) == ([], [])
        assert stored_checks(client) == [(agent_id, now - 5000, False)]


@pytest.mark.asyncio
async def test_checks_stay_spooled_when_the_collector_does_not_confirm_them(
    tmp_path: Path,
) -> None:
    """A 200 without a matching "checks" count (an older collector, a proxy) acks the
    records it names but keeps the checks."""

    async def old_collector(request: web.Request) -> web.Response:
        return web.json_response({"stored": [], "duplicates": []})

    app = web.Application()
    app.router.add_post("/api/v1/measurements", old_collector)
    async with TestServer(app) as server:
        spool = FakeSpool([], checks=[(int(time.time() * 1000) - 1000, False)])
        async with uploader(
            [str(server.make_url(""))], "ag-test", Ed25519PrivateKey.generate()
        ) as up:
            result = await up.upload_once(spool)
        assert (result.failure, result.checks_acknowledged, len(spool.checks)) == (
            BAD_RESPONSE, 0, 1,
        )  # fmt: skip


@pytest.mark.asyncio
async def test_uploads_go_through_the_configured_proxy(tmp_path: Path) -> None:
    """A forward proxy on loopback in front of the collector: every batch reaches it, asked
    for in the absolute form an HTTP proxy is sent, and is stored behind it."""
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        agent_id, key = await enrolled(client)
        collector_url = str(client.server.make_url("")).rstrip("/")
        asked: list[str] = []

        async def forward(request: web.Request) -> web.Response:
            asked.append(request.raw_path)  # the request target, absolute for a proxy
            async with (
                aiohttp.ClientSession() as session,
                session.request(
                    request.method,
                    collector_url + request.rel_url.path_qs,
                    data=await request.read(),
                    headers={"Content-Type": request.content_type},
                ) as answer,
            ):
                return web.Response(
                    status=answer.status, body=await answer.read(), content_type=answer.content_type
                )

        proxy_app = web.Application(client_max_size=8 * 1024 * 1024)
        proxy_app.router.add_route("*", "/{tail:.*}", forward)
        proxy = TestServer(proxy_app, host="127.0.0.1")
        await proxy.start_server()
        try:
            spool = spool_of(12)
            proxy_url = str(proxy.make_url("")).rstrip("/")
            async with uploader(
                [collector_url], agent_id, key, batch_size=5, proxy=proxy_url
            ) as up:
                total = await up.drain(spool, asyncio.Event())
        finally:
            await proxy.close()
        assert (total.failure, total.acknowledged, spool.entries) == (None, 12, [])
        assert client.app[STORAGE].count_measurements() == 12
        assert asked == [f"{collector_url}/api/v1/measurements"] * 3

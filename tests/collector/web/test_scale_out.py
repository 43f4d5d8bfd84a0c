"""Collector, scale-out: two real ``netsonde-collector serve`` processes on one PostgreSQL,
uploaded to at the same time, the same batches to both and overlapping ones to each.

Every measurement must be stored exactly once, reported as stored by exactly one process
(the other sees a duplicate), and counted once in the rollups; both processes must stop
cleanly on SIGTERM. PostgreSQL is required here (CI=true makes its absence a failure): it is
the backend that scales out this way. Each batch comes from an agent of its own: one agent's
batches must arrive in order (docs/wire-format.md, "Sequence numbers"), where these race.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from agent.api.paths import MEASUREMENTS_PATH, METRICS_PATH
from agent.wire.batch import encode_batch
from agent.wire.keys import public_key_bytes
from collector.storage import open_storage
from tests.collector.app_client import MSGPACK, recent
from tests.collector.process import REPO, CollectorProcess, collector_cli
from tests.collector.storage.helpers import counts_from_rows

RECORDS = 50


@pytest.fixture
def collectors(pg_url: str, tmp_path: Path) -> Iterator[tuple[CollectorProcess, CollectorProcess]]:
    engine = create_engine(pg_url)
    with engine.begin() as conn:  # the session's database, shared with other tests: start empty
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    started: list[CollectorProcess] = []
    try:
        started += [CollectorProcess(pg_url, tmp_path / f"collector-{n}.log") for n in "ab"]
        for collector in started:
            collector.wait_listening()
        yield started[0], started[1]
    finally:
        for collector in started:
            collector.kill()


def _operator_header(db: str) -> dict[str, str]:
    done = subprocess.run(
        collector_cli("operator-token", "create", "--name", "scale-out", "--db", db),
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return {"Authorization": f"Bearer {done.stdout.splitlines()[0]}"}


def _agents(db: str, key: Ed25519PrivateKey, count: int) -> list[str]:
    """``count`` agents sharing ``key``, enrolled straight into the store."""
    store = open_storage(db)
    ids = [f"ag-scale-{n:03}" for n in range(count)]
    for agent_id in ids:
        store.add_agent(agent_id, "scale-out", public_key_bytes(key), int(time.time() * 1000))
    store.close()
    return ids


async def _upload(
    session: aiohttp.ClientSession, url: str, batch: bytes
) -> tuple[list[str], list[str]]:
    """One batch, retried after a 429 as the agent's uploader would."""
    while True:
        async with session.post(url + MEASUREMENTS_PATH, data=batch, headers=MSGPACK) as resp:
            if resp.status == 429:
                await asyncio.sleep(float(resp.headers["Retry-After"]))
                continue
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            return body["stored"], body["duplicates"]


async def _stored_metric(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> float:
    async with session.get(url + METRICS_PATH, headers=headers) as resp:
        families = text_string_to_metric_families(await resp.text())
    return sum(
        s.value
        for family in families
        for s in family.samples
        if s.name == "netsonde_ingest_measurements_total" and s.labels["result"] == "stored"
    )


def _assert_stored_once(pg_url: str, count: int) -> None:
    """The database holds ``count`` measurements, each counted once in the rollups."""
    store = open_storage(pg_url)
    try:
        assert store.count_measurements() == count
        assert store.rollup_counts() == counts_from_rows(store)
        assert sum(store.rollup_counts().values()) == count
    finally:
        store.close()


def test_two_processes_store_each_measurement_once(
    pg_url: str, collectors: tuple[CollectorProcess, CollectorProcess]
) -> None:
    a, b = collectors
    key = Ed25519PrivateKey.generate()
    agents = iter(_agents(pg_url, key, 30))
    token = _operator_header(pg_url)
    measurements = recent(25 * RECORDS)  # ids all distinct
    chunks = [measurements[i : i + RECORDS] for i in range(0, len(measurements), RECORDS)]
    shared, only_a, fresh = chunks[:10], chunks[10:20], chunks[20:]
    # B's own batches each repeat half of one of A's, racing A for those ids; their other
    # half is new, each of the 5 fresh chunks split over two of them.
    half = RECORDS // 2
    overlapping = [
        only_a[i][half:] + fresh[i // 2][(i % 2) * half : (i % 2 + 1) * half] for i in range(10)
    ]

    async def run() -> tuple[list[list[str]], list[list[str]], float]:
        async with aiohttp.ClientSession() as session:
            sign = [encode_batch(next(agents), 1, ms, key) for ms in chunks[:20]]
            shared_batches = sign[:10]
            to_a = shared_batches + sign[10:20]
            to_b = shared_batches[::-1] + [
                encode_batch(next(agents), 1, ms, key) for ms in overlapping
            ]
            sent = [to_a, to_b]
            # Several uploads in flight per process, both processes at once.
            results = await asyncio.gather(
                *(
                    _upload(session, c.url, batch)
                    for c, batches in zip((a, b), sent, strict=True)
                    for batch in batches
                )
            )
            metric = sum([await _stored_metric(session, c.url, token) for c in (a, b)])
        stored_a = [r[0] for r in results[: len(to_a)]]
        stored_b = [r[0] for r in results[len(to_a) :]]
        for (stored, dups), batch_ms in zip(
            results, [*shared, *only_a, *shared[::-1], *overlapping], strict=True
        ):
            assert sorted(stored + dups) == sorted(m.id for m in batch_ms)
        return stored_a, stored_b, metric

    stored_a, stored_b, metric = asyncio.run(run())

    every_id = {m.id for m in measurements}
    reported = Counter(i for stored in [*stored_a, *stored_b] for i in stored)
    assert set(reported) == every_id
    assert max(reported.values()) == 1  # no id reported stored twice, by one process or both
    assert {i for s in stored_a for i in s}.isdisjoint(i for s in stored_b for i in s)
    assert metric == len(every_id)
    _assert_stored_once(pg_url, len(every_id))
    assert a.stop() == 0
    assert b.stop() == 0
    assert "stopping" in a.log.read_text()

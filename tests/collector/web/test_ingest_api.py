"""Collector API, enrolment and ingest end to end: the real app on SQLite and PostgreSQL,
fed by the agent's own identity and batch encoder with the lab's recorded measurements."""

from __future__ import annotations

import base64
import dataclasses
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.api.paths import ENROLL_PATH, MEASUREMENTS_PATH
from agent.wire.batch import encode_batch
from collector.config import Settings
from collector.web.keys import INGEST_THREADS, STORAGE
from tests.collector.app_client import MSGPACK, enrolled, recent, running


@pytest.mark.asyncio
async def test_upload_is_idempotent_and_bad_batches_store_nothing(storage_url: str) -> None:
    async with running(Settings(db_url=storage_url)) as client:
        storage = client.app[STORAGE]
        agent_id, key = await enrolled(client)
        measurements = recent(20)
        ids = [m.id for m in measurements]
        batch = encode_batch(agent_id, 1, measurements, key)

        response = await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)
        assert response.status == 200, await response.text()
        assert await response.json() == {"stored": ids, "duplicates": [], "checks": 0}
        again = await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)
        assert await again.json() == {"stored": [], "duplicates": ids, "checks": 0}
        assert storage.count_measurements() == 20

        forged = encode_batch(agent_id, 2, recent(3), Ed25519PrivateKey.generate())
        response = await client.post(MEASUREMENTS_PATH, data=forged, headers=MSGPACK)
        assert response.status == 400
        assert (await response.json())["reason"] == "signature"
        for garbage in (batch[: len(batch) // 2], b"\xc1" * 10, b""):
            response = await client.post(MEASUREMENTS_PATH, data=garbage, headers=MSGPACK)
            assert response.status == 400
            assert "error" in await response.json()
        stale = [dataclasses.replace(m, started_ms=1000) for m in recent(2)]
        response = await client.post(
            MEASUREMENTS_PATH, data=encode_batch(agent_id, 3, stale, key), headers=MSGPACK
        )
        assert (response.status, (await response.json())["reason"]) == (400, "timestamp")
        assert storage.count_measurements() == 20

        other = encode_batch("ag-000000000000", 1, recent(1), key)
        response = await client.post(MEASUREMENTS_PATH, data=other, headers=MSGPACK)
        assert response.status == 401
        assert storage.revoke_agent(agent_id, int(time.time() * 1000))
        response = await client.post(
            MEASUREMENTS_PATH, data=encode_batch(agent_id, 4, recent(1), key), headers=MSGPACK
        )
        assert response.status == 403
        assert storage.count_measurements() == 20


@pytest.mark.asyncio
async def test_enrol_errors(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        storage = client.app[STORAGE]
        public = base64.b64encode(b"\x05" * 32).decode()
        now = int(time.time() * 1000)
        token = storage.create_enroll_token("a", 3_600_000, now)
        expired = storage.create_enroll_token("b", 1, now - 10)
        cases = [
            ({"token": "nope", "public_key": public}, 401),
            ({"token": expired, "public_key": public}, 403),
            ({"token": token, "public_key": "not base64!"}, 400),
            ({"token": token, "public_key": base64.b64encode(b"x").decode()}, 400),
            ({"token": 5, "public_key": public}, 400),
            (["a list"], 400),
        ]
        for body, status in cases:
            response = await client.post(ENROLL_PATH, json=body)
            assert response.status == status, (body, await response.text())
            assert "error" in await response.json()
        response = await client.post(ENROLL_PATH, data=b"{not json")
        assert response.status == 400
        assert (await client.post(ENROLL_PATH, json={"token": token, "public_key": public})).ok
        reused = await client.post(ENROLL_PATH, json={"token": token, "public_key": public})
        assert reused.status == 403


@pytest.mark.asyncio
async def test_oversized_and_wrong_type_bodies(tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path}/c.db", max_batch_request_bytes=1000)
    async with running(settings) as client:
        agent_id, key = await enrolled(client)
        batch = encode_batch(agent_id, 1, recent(5), key)
        assert len(batch) > 1000
        response = await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)
        assert response.status == 413
        assert "error" in await response.json()

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: capped while read
            for start in range(0, len(batch), 256):
                yield batch[start : start + 256]

        response = await client.post(MEASUREMENTS_PATH, data=chunked(), headers=MSGPACK)
        assert response.status == 413
        response = await client.post(MEASUREMENTS_PATH, data=batch)
        assert response.status == 415
        big = await client.post(ENROLL_PATH, data=b"x" * (settings.max_request_bytes + 1))
        assert big.status == 413
        assert "error" in await big.json()
        assert client.app[STORAGE].count_measurements() == 0


@pytest.mark.asyncio
async def test_a_full_batch_fits(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        agent_id, key = await enrolled(client)
        batch = encode_batch(agent_id, 1, recent(1000), key)
        response = await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)
        assert response.status == 200, await response.text()
        assert len((await response.json())["stored"]) == 1000


@pytest.mark.asyncio
async def test_rate_limit_per_agent(tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path}/c.db", ingest_rate=0.01, ingest_burst=2)
    async with running(settings) as client:
        agent_id, key = await enrolled(client)
        other_id, other_key = await enrolled(client)
        statuses = []
        for seq in range(3):
            batch = encode_batch(agent_id, seq, recent(1), key)
            response = await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)
            statuses.append(response.status)
        assert statuses == [200, 200, 429]
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["reason"] == "rate"
        batch = encode_batch(other_id, 1, recent(1), other_key)  # its own bucket
        assert (await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)).status == 200


@pytest.mark.asyncio
async def test_forgeries_do_not_use_up_an_agents_allowance(tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path}/c.db", ingest_rate=0.01, ingest_burst=2)
    async with running(settings) as client:
        agent_id, key = await enrolled(client)
        for seq in range(5):  # someone who knows the id, but not the key
            forged = encode_batch(agent_id, seq, recent(1), Ed25519PrivateKey.generate())
            response = await client.post(MEASUREMENTS_PATH, data=forged, headers=MSGPACK)
            assert (response.status, (await response.json())["reason"]) == (400, "signature")
        for seq in range(2):
            batch = encode_batch(agent_id, 10 + seq, recent(1), key)
            assert (await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)).status == 200


@pytest.mark.asyncio
async def test_ingest_runs_in_the_apps_own_threads_sized_for_the_backend(
    storage_url: str,
) -> None:
    before = sys.getswitchinterval()
    async with running(Settings(db_url=storage_url)) as client:
        storage = client.app[STORAGE]
        sqlite = storage.backend == "sqlite"
        # One SQLite writer: two threads and a short GIL switch interval while serving.
        default = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's own default
        assert client.app[INGEST_THREADS]._max_workers == (2 if sqlite else default)
        assert sys.getswitchinterval() == (0.001 if sqlite else before)
        agent_id, key = await enrolled(client)
        batch = encode_batch(agent_id, 1, recent(5), key)
        response = await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)
        assert response.status == 200, await response.text()
    assert sys.getswitchinterval() == before  # restored at cleanup

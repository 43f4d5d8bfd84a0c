"""Security: replayed batches are refused before they cost the agent anything (issue 21).

Before the fix a captured batch could be sent again for 30 days: its records were
deduplicated, but each copy took a token from the agent's rate limit, so the agent's own
next batch got 429. Now ingest keeps each agent's last sequence number and the signature
of that batch (docs/wire-format.md, "Sequence numbers"): an older batch is a 409 before the
rate limit; the last batch sent again (a retry whose answer was lost) is answered as stored
and charged nothing. The real app on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.api.paths import MEASUREMENTS_PATH
from agent.wire.batch import SIGNATURE_DOMAIN, encode_batch
from collector.config import Settings
from collector.web.keys import STORAGE
from tests.collector.app_client import MSGPACK, enrolled, recent, running
from tests.collector.storage.conftest import pg_url as pg_url
from tests.collector.storage.conftest import storage_url as storage_url

Client = TestClient[web.Request, web.Application]


def _slow(storage_url: str, burst: int) -> Settings:
    """An allowance of ``burst`` batches, not refilled within the test."""
    return Settings(db_url=storage_url, ingest_rate=0.001, ingest_burst=burst)


async def _post(client: Client, batch: bytes) -> tuple[int, Any]:
    response = await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)
    return response.status, await response.json()


@pytest.mark.asyncio
async def test_a_replayed_batch_is_refused_and_spends_no_allowance(storage_url: str) -> None:
    async with running(_slow(storage_url, 3)) as client:
        agent_id, key = await enrolled(client)
        first = encode_batch(agent_id, 1, recent(4), key)
        second = encode_batch(agent_id, 2, recent(4), key)
        for batch in (first, second):
            assert (await _post(client, batch))[0] == 200
        stored = client.app[STORAGE].count_measurements()
        # An eavesdropper's copies of the first batch, more of them than the allowance.
        for _ in range(10):
            status, body = await _post(client, first)
            assert (status, body["reason"]) == (409, "replay"), body
        assert client.app[STORAGE].count_measurements() == stored
        # The agent's own next batch takes the allowance's last token: still there.
        status, body = await _post(client, encode_batch(agent_id, 3, recent(2), key))
        assert status == 200, body
        assert len(body["stored"]) == 2
        # And the allowance is real: the one after that is over it.
        assert (await _post(client, encode_batch(agent_id, 4, recent(1), key)))[0] == 429


@pytest.mark.asyncio
async def test_a_retry_of_the_last_batch_is_accepted_and_charged_nothing(
    storage_url: str,
) -> None:
    async with running(_slow(storage_url, 2)) as client:
        agent_id, key = await enrolled(client)
        now = int(time.time() * 1000)
        measurements = recent(3)
        ids = [m.id for m in measurements]
        checks = [(now - 120_000, True), (now - 60_000, False)]
        batch = encode_batch(agent_id, 7, measurements, key, checks=checks)
        assert await _post(client, batch) == (200, {"stored": ids, "duplicates": [], "checks": 2})
        # The answer was lost: the same bytes again, as often as the link drops it.
        for _ in range(5):
            again = await _post(client, batch)
            assert again == (200, {"stored": [], "duplicates": ids, "checks": 2})
        # Five retries took nothing: the second token is still there.
        assert (await _post(client, encode_batch(agent_id, 8, recent(1), key)))[0] == 200
        # Now the retried batch is an old one, and another batch numbered 8 is not the 8th.
        assert (await _post(client, batch))[0] == 409
        status, body = await _post(client, encode_batch(agent_id, 8, recent(1), key))
        assert (status, body["reason"]) == (409, "replay")


@pytest.mark.asyncio
async def test_a_new_agent_starts_at_any_number_and_seq_must_be_readable(
    storage_url: str,
) -> None:
    async with running(Settings(db_url=storage_url)) as client:
        agent_id, key = await enrolled(client)
        assert (await _post(client, encode_batch(agent_id, 0, recent(1), key)))[0] == 200
        now = int(time.time() * 1000)
        for seq in (None, "1", -1, True):
            body: dict[str, Any] = {"v": 1, "a": agent_id, "t": now, "m": []}
            if seq is not None:
                body["s"] = seq
            packed = msgpack.packb(body, use_bin_type=True)
            signed = {"b": packed, "g": key.sign(SIGNATURE_DOMAIN + packed)}
            status, answer = await _post(client, msgpack.packb(signed, use_bin_type=True))
            assert (status, answer["reason"]) == (400, "schema"), (seq, answer)
        # A forger's batch numbered past the agent's is refused for its signature, and does
        # not move the agent's number: its own next batch still goes.
        forged = encode_batch(agent_id, 10**9, recent(1), Ed25519PrivateKey.generate())
        assert (await _post(client, forged))[1]["reason"] == "signature"
        assert (await _post(client, encode_batch(agent_id, 1, recent(1), key)))[0] == 200

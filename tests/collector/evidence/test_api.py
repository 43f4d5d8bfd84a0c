"""``GET /api/v1/evidence``: the signed bundle of what agents uploaded over HTTP, for the
operator only (a bundle names its agents), checked against the key the collector serves."""

from __future__ import annotations

import io
import time

import pytest

from agent.api.paths import COLLECTOR_KEY_PATH, EVIDENCE_PATH, MEASUREMENTS_PATH
from agent.wire.batch import encode_batch
from collector.config import Settings
from collector.evidence.netsonde_verify import verify_file
from tests.collector.app_client import MSGPACK, enrolled, operator, recent, running


@pytest.mark.asyncio
async def test_the_operator_downloads_a_bundle_that_verifies(storage_url: str) -> None:
    async with running(Settings(db_url=storage_url)) as client:
        agent_id, key = await enrolled(client)
        for seq in (1, 2):
            batch = encode_batch(agent_id, seq, recent(5), key)
            response = await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)
            assert response.status == 200, await response.text()
        now = int(time.time() * 1000)
        window = {"since": str(now - 3_600_000), "until": str(now + 1)}

        refused = await client.get(EVIDENCE_PATH, params=window)
        assert refused.status == 401
        assert "operator" in (await refused.json())["error"]

        response = await client.get(EVIDENCE_PATH, params=window, headers=operator(client))
        assert response.status == 200, await response.text()
        assert response.content_type == "application/x-tar"
        data = await response.read()
        published = (await (await client.get(COLLECTOR_KEY_PATH)).json())["public_key"]
        report = verify_file(io.BytesIO(data), published)
        assert report.ok, report.failures
        assert report.summary["measurements"] == 10
        assert report.summary["batches"] == 2
        assert response.headers["X-Netsonde-Bundle-Id"] == report.bundle_id


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"since": "0"},
        {"since": "0", "until": "yesterday"},
        {"since": "5", "until": "5"},
        {"since": "0", "until": "1", "agent": "x"},
        {"since": "0", "until": "1", "asn": "ASX"},
        {"since": "0", "until": "1", "domain": "not a host"},
        {"since": "0", "until": "1", "domain": "x" * 2000},
    ],
)
async def test_bad_queries_are_refused(tmp_path: object, params: dict[str, str]) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        response = await client.get(EVIDENCE_PATH, params=params, headers=operator(client))
        assert response.status == 400
        assert "error" in await response.json()

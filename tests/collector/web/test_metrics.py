"""Collector, metrics: ``GET /metrics`` counts what the ingest and control routes did, in a
registry per app, read back through prometheus-client's own parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from agent.api.auth import Credential, signed_headers
from agent.api.paths import CACHE_HEADER, CONTROL_PATH, MEASUREMENTS_PATH
from agent.model.measurement import Target
from agent.wire.batch import encode_batch
from collector.config import Settings
from collector.web.app import create_app
from tests.collector.app_client import MSGPACK, enrolled, operator, recent, running

Client = TestClient[web.Request, web.Application]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: Client) -> Samples:
    response = await client.get("/metrics", headers=operator(client))
    assert response.status == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.asyncio
async def test_ingest_counters(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        before = await scrape(client)
        assert value(before, "netsonde_ingest_rejects_total", reason="signature") == 0
        assert value(before, "netsonde_ingest_seconds_count") == 0

        agent_id, key = await enrolled(client)
        batch = encode_batch(agent_id, 1, recent(7), key)
        assert (await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)).status == 200
        assert (await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)).status == 200
        forged = encode_batch(agent_id, 2, recent(3), Ed25519PrivateKey.generate())
        assert (await client.post(MEASUREMENTS_PATH, data=forged, headers=MSGPACK)).status == 400
        garbage = b"\xc1not a batch"
        assert (await client.post(MEASUREMENTS_PATH, data=garbage, headers=MSGPACK)).status == 400
        assert (await client.post(MEASUREMENTS_PATH, data=batch)).status == 415
        assert (await client.put(MEASUREMENTS_PATH)).status == 405  # not an upload
        await client.get(MEASUREMENTS_PATH)  # the query API's, whatever it answers

        after = await scrape(client)
        assert value(after, "netsonde_ingest_batches_total", outcome="accepted") == 2
        assert value(after, "netsonde_ingest_batches_total", outcome="rejected") == 3
        assert value(after, "netsonde_ingest_batches_total", outcome="error") == 0
        assert value(after, "netsonde_ingest_measurements_total", result="stored") == 7
        assert value(after, "netsonde_ingest_measurements_total", result="duplicate") == 7
        rejects = {
            labels[0][1]: n
            for (name, labels), n in after.items()
            if name == "netsonde_ingest_rejects_total" and n
        }
        assert rejects == {"signature": 1, "schema": 1, "content_type": 1}
        assert value(after, "netsonde_ingest_seconds_count") == 5
        assert value(after, "netsonde_ingest_seconds_sum") > 0
        # Scrapes and enrolment are not uploads.
        assert value(after, "netsonde_control_requests_total", cache="none") == 0


@pytest.mark.asyncio
async def test_control_cache_counts_and_registries_are_per_app(tmp_path: Path) -> None:
    async def fake_control(target: Target, addresses: tuple[str, ...]) -> bytes:
        return b"\x80"  # an empty msgpack map; the metrics never look inside

    apps = [
        create_app(Settings(db_url=f"sqlite:///{tmp_path}/{n}.db"), measure=fake_control)
        for n in ("a", "b")
    ]
    first: Client = TestClient(TestServer(apps[0]))
    second: Client = TestClient(TestServer(apps[1]))
    async with first, second:
        agent = Credential(*await enrolled(first))

        async def post(body: object) -> ClientResponse:
            data = json.dumps(body).encode()
            headers = signed_headers(agent, "POST", CONTROL_PATH, data)
            return await first.post(CONTROL_PATH, data=data, headers=headers)

        caches = [
            (await post({"url": "https://example.org/"})).headers[CACHE_HEADER] for _ in range(3)
        ]
        assert caches == ["miss", "hit", "hit"]
        assert (await post({"url": 5})).status == 400
        samples = await scrape(first)
        assert value(samples, "netsonde_control_requests_total", cache="miss") == 1
        assert value(samples, "netsonde_control_requests_total", cache="hit") == 2
        assert value(samples, "netsonde_control_requests_total", cache="none") == 1
        other = await scrape(second)
        assert not any(n for (name, _), n in other.items() if name.endswith("_total"))

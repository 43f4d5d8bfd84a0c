"""Dashboard tests: the real app on a test server, with an agent's upload and a few networks.

a.example is blocked by tls.reset on AS64500 (PK) and fine on AS64501 (IR); b.example is
fine everywhere; c.example shows dns.nxdomain on AS64500; d.example one dns.timeout of four
measurements on AS64501. The enrolled agent also uploaded
real recorded measurements (unknown network, as the test server has no GeoIP) and one
online connectivity check.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.api.paths import MEASUREMENTS_PATH
from agent.wire.batch import encode_batch
from collector.config import Settings
from collector.storage import IngestRecord
from collector.web.keys import STORAGE
from tests.collector.app_client import MSGPACK, enrolled, recent, running
from tests.collector.storage.records import batch

__all__ = ["Site", "foreign_links", "site"]

Client = TestClient[web.Request, web.Application]


@dataclass
class Site:
    client: Client
    agent_id: str
    uploaded: list[str]  # ids of the recorded measurements the agent uploaded
    uploaded_verdicts: list[str]
    key: Ed25519PrivateKey  # the agent's, to sign more batches


def _records(now: int, domain: str, verdict: str, n: int) -> list[IngestRecord]:
    template = batch(1, now)[0]
    return [
        template._replace(
            key=uuid.uuid4().bytes, measured_ms=now - i * 60_000, domain=domain, verdict=verdict
        )
        for i in range(n)
    ]


@asynccontextmanager
async def site(tmp_path: Path, **settings: object) -> AsyncIterator[Site]:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db", **settings)) as client:  # type: ignore[arg-type]
        agent_id, key = await enrolled(client)
        now = int(time.time() * 1000)
        measurements = recent(5)
        body = encode_batch(agent_id, 1, measurements, key, checks=[(now - 30_000, True)])
        response = await client.post(MEASUREMENTS_PATH, data=body, headers=MSGPACK)
        assert response.status == 200, await response.text()
        storage = client.app[STORAGE]
        pk = _records(now, "a.example", "tls.reset", 3) + _records(now, "a.example", "ok", 1)
        pk += _records(now, "b.example", "ok", 2) + _records(now, "c.example", "dns.nxdomain", 2)
        storage.ingest(agent_id, pk, 64500, "PK", now)
        ir = _records(now, "a.example", "ok", 2) + _records(now, "b.example", "ok", 1)
        ir += _records(now, "d.example", "dns.timeout", 1) + _records(now, "d.example", "ok", 3)
        storage.ingest(agent_id, ir, 64501, "IR", now)
        verdicts = [m.verdict.verdict for m in measurements]
        yield Site(client, agent_id, [m.id for m in measurements], verdicts, key)


_LINK = re.compile(r'\s(?:href|src|action)="([^"]*)"')


def foreign_links(body: str) -> list[str]:
    """Every link, source and form target of a page that is not on its own origin."""
    return [url for url in _LINK.findall(body) if not url.startswith(("/", "?", "#"))]

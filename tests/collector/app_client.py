"""Collector tests: the real app on a test server, an enrolled agent, an operator token, and
recent measurements.

Shared by the web, ingest and enrichment tests; the control is never asked for here.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.api.paths import ENROLL_PATH
from agent.model.measurement import SiteMeasurement, Target
from agent.wire.keys import public_key_bytes
from collector.config import Settings
from collector.web.app import create_app
from collector.web.keys import STORAGE
from tests.collector.storage.records import clones

__all__ = ["MSGPACK", "enrolled", "operator", "recent", "running"]

MSGPACK = {"Content-Type": "application/msgpack"}


async def _no_control(target: Target, addresses: tuple[str, ...]) -> bytes:
    raise AssertionError("these tests never ask for a control")


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(create_app(settings, measure=_no_control))
    )
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def enrolled(
    client: TestClient[web.Request, web.Application],
) -> tuple[str, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    token = client.app[STORAGE].create_enroll_token("test", 3_600_000, int(time.time() * 1000))
    public = base64.b64encode(public_key_bytes(key)).decode()
    response = await client.post(ENROLL_PATH, json={"token": token, "public_key": public})
    assert response.status == 201, await response.text()
    agent_id: str = (await response.json())["agent_id"]
    return agent_id, key


def operator(client: TestClient[web.Request, web.Application]) -> dict[str, str]:
    """The header of a new operator token, for what only the operator may read."""
    _, token = client.app[STORAGE].create_operator_token("test", int(time.time() * 1000))
    return {"Authorization": f"Bearer {token}"}


def recent(n: int) -> list[SiteMeasurement]:
    """``n`` measurements one second apart, the last a minute ago: all within the clock checks."""
    return clones(n, start_ms=int(time.time() * 1000) - n * 1000 - 60_000)

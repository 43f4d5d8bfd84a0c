"""GET /api/v1/outages on SQLite and PostgreSQL: connectivity checks uploaded in signed
batches (stored once however often they come), then outage events grouped by network, an
ongoing one, a silent gap, the filters, and the storage's window edges; the agents in each
event for the operator, and only how many for the public."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select

from agent.api.paths import MEASUREMENTS_PATH, OUTAGES_PATH
from agent.wire.batch import encode_batch
from collector.config import Settings
from collector.storage.schema import connectivity
from collector.web.keys import STORAGE
from tests.collector.app_client import MSGPACK, enrolled, operator, recent, running

STEP = 5 * 60_000  # the agents' check interval


def checks_of(
    states: str, start: int, gaps: dict[int, int] | None = None
) -> list[tuple[int, bool]]:
    out, ms = [], start
    for index, state in enumerate(states):
        ms += (gaps or {}).get(index, 0)
        out.append((ms, state == "+"))
        ms += STEP
    return out


def count_rows(client: Any) -> int:
    with client.app[STORAGE].engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(connectivity)).scalar_one())


@pytest.mark.asyncio
async def test_checks_are_stored_once_with_the_batch(storage_url: str) -> None:
    async with running(Settings(db_url=storage_url)) as client:
        agent_id, key = await enrolled(client)
        now = int(time.time() * 1000)
        checks = checks_of("++-+", now - 4 * STEP)
        heartbeat = encode_batch(agent_id, 1, [], key, checks=checks)
        for _ in range(2):  # the second time: a retry after a lost answer
            response = await client.post(MEASUREMENTS_PATH, data=heartbeat, headers=MSGPACK)
            assert response.status == 200, await response.text()
            assert await response.json() == {"stored": [], "duplicates": [], "checks": 4}
        assert count_rows(client) == 4
        # Overlapping checks next to measurements: only the new one adds a row.
        more = checks[2:] + checks_of("+", now - 1000)
        batch = encode_batch(agent_id, 2, recent(2), key, checks=more)
        response = await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)
        body = await response.json()
        assert (len(body["stored"]), body["checks"]) == (2, 3)
        assert count_rows(client) == 5
        # A batch refused for a bad measurement stores none of its checks either.
        bad = encode_batch(agent_id, 3, recent(1), key, checks=checks_of("-", now - 500),
                           created_ms=now + 86_400_000)  # fmt: skip
        response = await client.post(MEASUREMENTS_PATH, data=bad, headers=MSGPACK)
        assert response.status == 400
        assert count_rows(client) == 5


async def _public_view(client: Any, outages: list[dict[str, Any]], agent: str) -> None:
    """The public gets the same events, counting the agents instead of naming them, and no
    one agent's outages."""
    public = await (await client.get(OUTAGES_PATH)).json()
    assert public["outages"] == [{k: v for k, v in o.items() if k != "agents"} for o in outages]
    for params in ({"agent": agent}, {"agent": agent, "asn": "64500"}):
        refused = await client.get(OUTAGES_PATH, params=params)
        assert refused.status == 401
        assert (await refused.json())["reason"] == "operator_token"


@pytest.mark.asyncio
async def test_outages_grouped_by_network_with_ongoing_and_silent(storage_url: str) -> None:
    async with running(Settings(db_url=storage_url)) as client:
        storage = client.app[STORAGE]
        a, b, c, d, e = [(await enrolled(client))[0] for _ in range(5)]
        now = int(time.time() * 1000)
        t0 = now - 14 * STEP  # a, b and d's last checks are recent: not silent now
        received = now - 1000
        storage.ingest(a, [], 64500, "PK", received, checks_of("++---++++++++++", t0))
        storage.ingest(b, [], 64500, "PK", received, checks_of("+++---+++++++++", t0 + 30_000))
        storage.ingest(c, [], 64501, "PK", received, checks_of("++++++--", t0))
        storage.ingest(d, [], 64500, "PK", received, checks_of("++++++", t0, gaps={3: 8 * STEP}))
        storage.ingest(e, [], 64502, "PK", received, checks_of("++++", t0))  # silent since

        token = operator(client)
        response = await client.get(OUTAGES_PATH, headers=token)
        assert response.status == 200, await response.text()
        outages = (await response.json())["outages"]
        assert outages == [
            {"kind": "offline", "start_ms": t0 + 6 * STEP, "end_ms": None,
             "last_online_ms": t0 + 5 * STEP, "first_online_ms": None, "asn": 64501,
             "cc": "PK", "agent_count": 1, "agents": [c], "checks": 2},
            {"kind": "silent", "start_ms": t0 + 3 * STEP, "end_ms": None,
             "last_online_ms": t0 + 3 * STEP, "first_online_ms": None, "asn": 64502,
             "cc": "PK", "agent_count": 1, "agents": [e], "checks": 0},
            {"kind": "offline", "start_ms": t0 + 2 * STEP, "end_ms": t0 + 6 * STEP + 30_000,
             "last_online_ms": t0 + STEP, "first_online_ms": t0 + 6 * STEP + 30_000,
             "asn": 64500, "cc": "PK", "agent_count": 2, "agents": sorted([a, b]), "checks": 6},
            {"kind": "silent", "start_ms": t0 + 2 * STEP, "end_ms": t0 + 11 * STEP,
             "last_online_ms": t0 + 2 * STEP, "first_online_ms": t0 + 11 * STEP,
             "asn": 64500, "cc": "PK", "agent_count": 1, "agents": [d], "checks": 0},
        ]  # fmt: skip
        await _public_view(client, outages, d)

        async def query(**params: str) -> list[dict[str, Any]]:
            response = await client.get(OUTAGES_PATH, params=params, headers=token)
            assert response.status == 200, await response.text()
            found: list[dict[str, Any]] = (await response.json())["outages"]
            return found

        assert [o["agents"] for o in await query(asn="AS64501")] == [[c]]
        assert [o["kind"] for o in await query(agent=d)] == ["silent"]
        assert await query(cc="ir") == []
        # A window starting inside a's and b's outage still dates it from its real start.
        inside = await query(asn="64500", since=str(t0 + 4 * STEP), until=str(t0 + 5 * STEP))
        assert [(o["kind"], o["start_ms"], o["end_ms"]) for o in inside] == [
            ("offline", t0 + 2 * STEP, t0 + 6 * STEP + 30_000),
            ("silent", t0 + 2 * STEP, t0 + 11 * STEP),
        ]
        assert [o["checks"] for o in inside] == [6, 0]
        assert await query(since=str(t0 + 12 * STEP), asn="64500") == []

        for params in ({"agent": "x" * 65}, {"domain": "x.com"}, {"since": "yesterday"}):
            response = await client.get(OUTAGES_PATH, params=params)
            assert response.status == 400
            assert "error" in await response.json()

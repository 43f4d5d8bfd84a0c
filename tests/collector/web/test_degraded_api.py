"""Degraded periods in GET /api/v1/outages, on SQLite and PostgreSQL: goodput samples ride
in signed batches with their checks (stored once), and a network whose agent fell far below
its own baseline shows a ``degraded`` event while its other agents are counted as sampled."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select

from agent.api.paths import MEASUREMENTS_PATH, OUTAGES_PATH
from agent.wire.batch import encode_batch
from collector.config import Settings
from collector.storage.schema import goodput
from collector.web.keys import STORAGE
from tests.collector.app_client import MSGPACK, enrolled, operator, running

STEP = 30 * 60_000
FAST, SLOW = 40_000_000, 1_500_000


def samples_of(rates: list[int], start: int) -> tuple[list[tuple[int, bool]], dict[int, int]]:
    times = [start + i * STEP for i in range(len(rates))]
    return [(ms, True) for ms in times], dict(zip(times, rates, strict=True))


def rows(client: Any) -> int:
    with client.app[STORAGE].engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(goodput)).scalar_one())


@pytest.mark.asyncio
async def test_goodput_travels_with_its_checks_and_gives_degraded_periods(storage_url: str) -> None:
    async with running(Settings(db_url=storage_url)) as client:
        a, key_a = await enrolled(client)
        b, key_b = await enrolled(client)
        now = int(time.time() * 1000)
        t0 = now - 12 * STEP
        checks, rates = samples_of([FAST] * 6 + [SLOW] * 3 + [FAST] * 2, t0)
        batch = encode_batch(a, 1, [], key_a, checks=checks, goodput=rates)
        for _ in range(2):  # sent again after a lost answer: nothing new
            response = await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)
            assert response.status == 200, await response.text()
        assert rows(client) == 11
        other, other_rates = samples_of([FAST // 2] * 11, t0 + 60_000)
        batch = encode_batch(b, 1, [], key_b, checks=other, goodput=other_rates)
        assert (await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)).status == 200

        token = operator(client)
        response = await client.get(OUTAGES_PATH, params={"kind": "degraded"}, headers=token)
        assert response.status == 200, await response.text()
        [period] = (await response.json())["outages"]
        assert period == {
            "kind": "degraded", "start_ms": t0 + 6 * STEP, "end_ms": t0 + 9 * STEP,
            "last_normal_ms": t0 + 5 * STEP, "asn": None, "cc": None, "agent_count": 1,
            "agents_sampled": 2, "samples": 3, "goodput_kbps": SLOW // 1000,
            "baseline_kbps": FAST // 1000, "agents": [a],
        }  # fmt: skip
        public = await (await client.get(OUTAGES_PATH)).json()
        assert public["outages"] == [{k: v for k, v in period.items() if k != "agents"}]
        after = {"since": str(t0 + 10 * STEP)}
        assert (await (await client.get(OUTAGES_PATH, params=after)).json())["outages"] == []
        offline = await client.get(OUTAGES_PATH, params={"kind": "offline"})
        assert (await offline.json())["outages"] == []
        refused = await client.get(OUTAGES_PATH, params={"kind": "slow"})
        assert refused.status == 400
        assert "kind" in (await refused.json())["error"]

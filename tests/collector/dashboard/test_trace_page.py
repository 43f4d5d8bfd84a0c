"""A trace's measurement page: the explanation says where the censor is, a table shows each
TTL, and the public page hides the routers that could point at the agent (the one at TTL 1,
and those in non-public space, such as the lab's ISP side in 100.64.0.0/10) everywhere on it,
where the operator's shows them all."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pytest

from agent.api.paths import MEASUREMENTS_PATH
from agent.wire.batch import encode_batch
from collector.config import Settings
from collector.dashboard.render import CSP
from tests.collector.app_client import MSGPACK, enrolled, operator, running
from tests.collector.test_enrich import write_mmdb
from tests.collector.traces import AFTER, CPE, ISP, trace_measurement

RANGES = {"198.51.100.0/24": {"autonomous_system_number": 64500,
                              "autonomous_system_organization": "Example"}}  # fmt: skip


def _table(body: str) -> list[list[str]]:
    table = re.search(r'<table class="trace">(.*?)</table>', body, re.S)
    assert table is not None, body
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table[1], re.S)
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", r)] for r in rows[1:]]


@pytest.mark.asyncio
async def test_a_trace_page_shows_the_table_and_hides_the_agents_routers(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    geoip = write_mmdb(tmp_path / "asn.mmdb", RANGES)
    trace = trace_measurement(started_ms=int(time.time() * 1000) - 60_000)
    async with running(Settings(db_url=db, geoip=(geoip,))) as client:
        agent_id, key = await enrolled(client)
        data = encode_batch(agent_id, 1, [trace], key)
        assert (await client.post(MEASUREMENTS_PATH, data=data, headers=MSGPACK)).status == 200
        response = await client.get(f"/measurement/{trace.id}")
        assert response.status == 200
        assert response.headers["Content-Security-Policy"] == CSP
        body = html.unescape(await response.text())
        assert "<script" not in body
        assert (
            f"the censor reacted at hop 4 with a reset, after router {AFTER} (AS 64500 Example)"
            in body
        )
        assert _table(body) == [
            ["1", "*", "exceeded", "exceeded"],
            ["2", "*", "exceeded", "exceeded"],
            ["3", AFTER, "exceeded", "exceeded"],
            ["4 (censor)", "198.51.100.250", "rst", "exceeded"],
            ["64", "-", "rst", "-"],
        ]
        for secret in (CPE, ISP, agent_id):
            assert secret not in body, secret
        assert "after_hop_asn" in body

        full = html.unescape(await (await client.get(
            f"/measurement/{trace.id}", headers=operator(client))).text())  # fmt: skip
        assert [row[1] for row in _table(full)][:2] == [CPE, ISP]
        assert CPE in full.split("<details>")[1]  # the observations, as signed
        assert agent_id in full

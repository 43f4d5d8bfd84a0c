"""The operator's agent health page shows each agent's version, spool depth and evictions as
its last upload said them ("-" where it said nothing), and no public page shows any."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from agent.api.paths import MEASUREMENTS_PATH
from agent.wire.batch import encode_batch
from tests.collector.app_client import MSGPACK, operator
from tests.collector.dashboard.site import site
from tests.collector.dashboard.test_pages import PUBLIC

HEALTH = "/operator/agents"
VERSION = "9.8.7.dev3+gabc"


def status_cells(body: str) -> list[str]:
    """The version, spool and evictions cells of the one agent's row."""
    (row,) = re.findall(r"<tr>\s*<td>test</td>(.*?)</tr>", body, re.S)
    cells = [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]
    return cells[5:8]


@pytest.mark.asyncio
async def test_agent_health_shows_the_last_uploads_status(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        headers = operator(s.client)
        # The site's upload is an older agent's: it said its evictions (0), nothing else.
        before = await (await s.client.get(HEALTH, headers=headers)).text()
        assert status_cells(before) == ["-", "-", "0"]
        body = encode_batch(
            s.agent_id, 2, [], s.key, checks=[(int(time.time() * 1000) - 1000, True)],
            evictions=12, spool=(340, 5), version=VERSION,
        )  # fmt: skip
        response = await s.client.post(MEASUREMENTS_PATH, data=body, headers=MSGPACK)
        assert response.status == 200, await response.text()
        page = await (await s.client.get(HEALTH, headers=headers)).text()
        assert status_cells(page) == [VERSION, "340 / 5", "12"]
        assert 'title="340 measurements and 5 connectivity checks waiting"' in page
        for path in PUBLIC:
            public = await (await s.client.get(path)).text()
            assert VERSION not in public, path
            assert "340 / 5" not in public, path

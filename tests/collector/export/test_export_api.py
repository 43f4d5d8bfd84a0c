"""``GET /api/v1/export`` on the real app, on SQLite and PostgreSQL: streamed in pages of
three rows, every row once and in order; public lines name no agent, the operator's do;
bad parameters are a 400 in JSON; a client that goes away frees its export's slot."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.api.paths import EXPORT_PATH
from collector.config import Settings
from collector.export.stream import MAX_EXPORTS, ExportLimits, ExportStream
from collector.web import export as web_export
from collector.web.app import create_app
from collector.web.keys import EXPORTS, STORAGE
from collector.web.queries import measurement_view
from tests.collector.app_client import operator
from tests.collector.export.data import T0, TIED_MS, Stored, fill
from tests.collector.storage.records import AGENT, clones, ingest_records

Client = TestClient[web.Request, web.Application]
PAGE_ROWS = 3


async def _no_control(*_: Any) -> bytes:
    raise AssertionError("never asked for a control")


@asynccontextmanager
async def serving(url: str) -> AsyncIterator[tuple[Client, list[Stored]]]:
    app = create_app(Settings(db_url=url), measure=_no_control)
    app[EXPORTS] = ExportLimits(page_rows=PAGE_ROWS)
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    try:
        storage = client.app[STORAGE]
        storage.add_agent(AGENT, "test agent", b"\x01" * 32, 0)
        yield client, await asyncio.to_thread(fill, storage)
    finally:
        await client.close()


async def export(client: Client, params: Any, **kw: Any) -> list[Any]:
    response = await client.get(EXPORT_PATH, params=params, **kw)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response.headers.get("Transfer-Encoding") == "chunked"
    return [json.loads(line) for line in (await response.text()).splitlines()]


@pytest.mark.asyncio
async def test_streams_every_row_once_public_and_operator(storage_url: str) -> None:
    async with serving(storage_url) as (client, expected):
        public = await export(client, {"format": "jsonl"})
        assert [row["id"] for row in public] == [s.row.id for s in expected]
        assert public == [measurement_view(s.row, operator=False) for s in expected]
        assert all("agent_id" not in row for row in public)
        full = await export(client, {}, headers=operator(client))
        assert full == [measurement_view(s.row, operator=True) for s in expected]
        ooni = await export(client, {"format": "ooni"})
        assert [row["id"] for row in ooni] == [s.row.id for s in expected]
        assert all(row["test_name"] == "web_connectivity" for row in ooni)
        assert AGENT not in json.dumps(ooni)
        assert all("probe_ip" not in row for row in ooni)


@pytest.mark.asyncio
async def test_filters(storage_url: str) -> None:
    async with serving(storage_url) as (client, expected):
        repeated = await export(client, [("asn", "AS64501"), ("asn", "0")])
        assert [row["id"] for row in repeated] == [
            s.row.id for s in expected if s.row.asn in (None, 64501)
        ]
        rows = await export(
            client, {"asn": "AS64501,0", "since": str(T0 + 5_000), "until": str(TIED_MS + 1)}
        )
        assert [row["id"] for row in rows] == [
            s.row.id
            for s in expected
            if s.row.asn in (None, 64501) and T0 + 5_000 <= s.row.measured_ms <= TIED_MS
        ]
        assert await export(client, {"domain": "https://nothing.example/x"}) == []
        iso = await export(client, {"until": "2023-11-14T22:13:20"})  # T0 exactly
        assert iso == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "params",
    [
        {"format": "csv"},
        {"asn": "AS-1"},
        {"asn": ",".join(str(n) for n in range(70))},
        {"since": "yesterday"},
        {"since": "2000", "until": "1000"},
        {"domain": "not a host"},
        {"verdict": "ok"},
        {"domain": "x" * 2000},
    ],
)
async def test_bad_parameters_are_400_json(tmp_path: Path, params: dict[str, str]) -> None:
    async with serving(f"sqlite:///{tmp_path}/c.db") as (client, _):
        response = await client.get(EXPORT_PATH, params=params)
        assert response.status == 400, await response.text()
        assert "error" in await response.json()
        repeated = await client.get(f"{EXPORT_PATH}?domain=a.example&domain=b.example")
        assert repeated.status == 400
        forged = await client.get(EXPORT_PATH, headers={"Authorization": "Bearer x.y"})
        assert forged.status == 401


@pytest.mark.asyncio
async def test_busy_is_503_with_retry_after(tmp_path: Path) -> None:
    async with serving(f"sqlite:///{tmp_path}/c.db") as (client, _):
        slots = client.app[EXPORTS].slots
        for _ in range(MAX_EXPORTS):
            await slots.acquire()
        response = await client.get(EXPORT_PATH)
        assert response.status == 503
        assert "error" in await response.json()
        assert int(response.headers["Retry-After"]) > 0
        for _ in range(MAX_EXPORTS):
            slots.release()
        assert len(await export(client, {})) > 0


class Recording(ExportStream):
    """The real stream, remembered, so that a test can see how far it got."""

    made: ClassVar[list[ExportStream]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        Recording.made.append(self)


@pytest.mark.asyncio
async def test_a_client_that_goes_away_stops_the_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_export, "ExportStream", Recording)
    async with serving(f"sqlite:///{tmp_path}/c.db") as (client, expected):
        storage = client.app[STORAGE]
        # ~10 MB of OONI lines: more than the sockets hold, so the server waits on the client.
        many = ingest_records(clones(3000, T0 + 100_000))
        await asyncio.to_thread(storage.ingest, AGENT, many, 64500, "PK", T0)
        client.app[EXPORTS].page_rows = 10
        response = await client.get(EXPORT_PATH, params={"format": "ooni"})
        assert response.status == 200
        first = await response.content.readline()
        assert json.loads(first)["id"] == expected[0].row.id
        response.close()  # hangs up mid-stream
        slots = client.app[EXPORTS].slots
        for _ in range(200):
            if getattr(slots, "_value", None) == MAX_EXPORTS:
                break
            await asyncio.sleep(0.05)
        assert getattr(slots, "_value", None) == MAX_EXPORTS
        [stream] = Recording.made
        assert stream.rows < len(expected) + len(many)


@pytest.mark.asyncio
async def test_a_client_that_stops_reading_is_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_export, "ExportStream", Recording)
    monkeypatch.setattr(web_export, "WRITE_GRACE_S", 0.5)
    monkeypatch.setattr(web_export, "MIN_RATE", 1 << 40)
    async with serving(f"sqlite:///{tmp_path}/c.db") as (client, expected):
        storage = client.app[STORAGE]
        # ~30 MB of OONI lines: more than the sockets' buffers hold.
        many = ingest_records(clones(8000, T0 + 100_000))
        await asyncio.to_thread(storage.ingest, AGENT, many, 64500, "PK", T0)
        client.app[EXPORTS].page_rows = 200
        response = await client.get(EXPORT_PATH, params={"format": "ooni"})
        assert response.status == 200  # and then nothing is read
        slots = client.app[EXPORTS].slots
        for _ in range(600):
            if getattr(slots, "_value", None) == MAX_EXPORTS:
                break
            await asyncio.sleep(0.05)
        assert getattr(slots, "_value", None) == MAX_EXPORTS
        stream = Recording.made[-1]
        assert stream.rows < len(expected) + len(many)
        response.close()

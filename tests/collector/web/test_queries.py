"""Collector query API: the storage queries on SQLite and PostgreSQL, the HTTP routes on the
real app fed by the agent's own batch encoder, and the OpenAPI file against the router."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent.api.paths import AGENTS_PATH, BLOCKING_PATH, MEASUREMENTS_PATH, TIMELINE_PATH
from agent.model.measurement import SiteMeasurement
from agent.wire.batch import encode_batch
from collector.config import Settings
from collector.storage import IngestRecord, Storage, open_storage
from collector.storage.blocking import BlockingRow, dominant
from collector.storage.queries import BadCursor, MeasurementFilter
from collector.storage.schema import HOUR_MS
from collector.web.keys import STORAGE
from tests import REPO
from tests.collector.app_client import MSGPACK, enrolled, operator, recent, running
from tests.collector.storage.records import AGENT, batch

T0 = 1_700_000_000_000 - 1_700_000_000_000 % (24 * HOUR_MS)  # a UTC midnight
TEMPLATE = batch(1, T0)[0]


def rec(domain: str, verdict: str, at: int) -> IngestRecord:
    return TEMPLATE._replace(key=uuid.uuid4().bytes, measured_ms=at, domain=domain, verdict=verdict)


def many(domain: str, verdict: str, n: int, at: int) -> list[IngestRecord]:
    return [rec(domain, verdict, at + i) for i in range(n)]


@pytest.fixture
def store(storage_url: str) -> Iterator[Storage]:
    storage = open_storage(storage_url)
    storage.add_agent(AGENT, "test agent", b"\x01" * 32, 0)
    try:
        yield storage
    finally:
        storage.close()


def fill(store: Storage) -> None:
    """a.example blocked by tls.reset on AS1 (PK) at T0, fine on AS2 (IR) two hours later;
    b.example down or unknown only; c.example from an unknown network the next day."""
    pk = many("a.example", "tls.reset", 3, T0) + many("a.example", "ok", 5, T0 + 10)
    pk += [rec("a.example", "dns.nxdomain", T0 + 20)]
    pk += many("b.example", "down", 2, T0) + [rec("b.example", "inconclusive", T0)]
    store.ingest(AGENT, pk, 1, "PK", T0)
    store.ingest(AGENT, many("a.example", "ok", 2, T0 + 2 * HOUR_MS), 2, "IR", T0)
    store.ingest(AGENT, [rec("c.example", "http.blockpage", T0 + 25 * HOUR_MS)], None, None, T0)


def test_blocking_counts_dominant_and_filters(store: Storage) -> None:
    fill(store)
    a_pk = BlockingRow(
        "a.example", 1, "PK", {"tls.reset": 3, "ok": 5, "dns.nxdomain": 1}, 9, "tls.reset"
    )
    a_ir = BlockingRow("a.example", 2, "IR", {"ok": 2}, 2, None)
    b_pk = BlockingRow("b.example", 1, "PK", {"down": 2, "inconclusive": 1}, 3, None)
    c_unknown = BlockingRow("c.example", 0, "", {"http.blockpage": 1}, 1, "http.blockpage")
    assert store.blocking() == [a_pk, a_ir, b_pk, c_unknown]
    assert store.blocking(cc="PK") == [a_pk, b_pk]
    assert store.blocking(asn=2) == [a_ir]
    assert store.blocking(asn=0, cc="") == [c_unknown]
    assert store.blocking(domain="a.example") == [a_pk, a_ir]
    # Hourly rollups: the window takes whole hours.
    assert store.blocking(since_ms=T0 + HOUR_MS + 5) == [a_ir, c_unknown]
    assert store.blocking(until_ms=T0 + HOUR_MS) == [a_pk, b_pk]
    assert store.blocking(domain="nope.example") == []


def test_counts_are_listed_by_verdict_name_whatever_order_ids_were_given_in(
    store: Storage,
) -> None:
    # Ids go to verdicts as they are first met: tls.reset's is the smallest here, so each
    # cell's rows come from the database in an order other than the names'.
    store.ingest(AGENT, many("a.example", "tls.reset", 2, T0), 1, "PK", T0)
    store.ingest(
        AGENT, many("a.example", "ok", 3, T0) + many("b.example", "ok", 1, T0), 1, "PK", T0
    )
    store.ingest(AGENT, [rec("a.example", "dns.nxdomain", T0)], 1, "PK", T0)
    by_name = ["dns.nxdomain", "ok", "tls.reset"]
    windows: list[dict[str, Any]] = [
        {},  # all time
        {"since_ms": T0},  # one hour
        {"since_ms": T0 - 3 * 24 * HOUR_MS, "until_ms": T0 + 24 * HOUR_MS},  # days
        {"since_ms": T0 - 30 * 24 * HOUR_MS, "until_ms": T0 + 30 * 24 * HOUR_MS},  # weeks
        {"domain": "a.example", "since_ms": T0},  # the hourly table
    ]
    for window in windows:
        a_pk = store.blocking(**window)[0]
        assert (a_pk.domain, list(a_pk.counts)) == ("a.example", by_name), window
        assert a_pk.dominant == "tls.reset"
    ((_, counts),) = store.timeline(domain="a.example")
    assert list(counts) == by_name


def test_the_matrix_is_in_name_order_whatever_order_cells_were_given_ids_in(
    store: Storage,
) -> None:
    # Cells get ids as first met: here in reverse name order, on two networks.
    domains = [f"site{i:02}.example" for i in range(20)]
    for domain in reversed(domains):
        store.ingest(AGENT, [rec(domain, "ok", T0)], 2, "IR", T0)
        store.ingest(AGENT, [rec(domain, "tls.reset", T0)], 1, "PK", T0)
    every = [(d, asn) for d in domains for asn in (1, 2)]
    names = [(row.domain, row.asn) for row in store.blocking()]
    assert names == every  # most cells: mapped through the order of every cell
    assert [(r.domain, r.asn) for r in store.blocking(cc="PK")] == [(d, 1) for d in domains]
    # One domain's two cells of 40: sorted on their own.
    assert [(r.domain, r.asn) for r in store.blocking(domain="site07.example")] == [
        ("site07.example", 1),
        ("site07.example", 2),
    ]
    assert [(r.domain, r.asn) for r in store.blocking(since_ms=T0)] == every


def test_timeline_buckets(store: Storage) -> None:
    fill(store)
    assert store.timeline(domain="a.example") == [
        (T0, {"tls.reset": 3, "ok": 5, "dns.nxdomain": 1}),
        (T0 + 2 * HOUR_MS, {"ok": 2}),
    ]
    assert store.timeline(bucket_ms=24 * HOUR_MS) == [
        (T0, {"tls.reset": 3, "ok": 7, "dns.nxdomain": 1, "down": 2, "inconclusive": 1}),
        (T0 + 24 * HOUR_MS, {"http.blockpage": 1}),
    ]
    assert store.timeline(asn=2, since_ms=T0 + 3 * HOUR_MS) == []
    with pytest.raises(ValueError, match="bucket"):
        store.timeline(bucket_ms=1000)


def test_pages_walk_every_row_once_newest_first(store: Storage) -> None:
    records = batch(57, T0)
    # Ties on measured_ms: the id must break them, or a page boundary would skip or repeat.
    records = [r._replace(measured_ms=T0 + (i // 4) * 1000) for i, r in enumerate(records)]
    store.ingest(AGENT, records[:30], 1, "PK", T0)
    store.ingest(AGENT, records[30:], None, None, T0 + 5)
    for limit in (1, 7, 10, 57, 1000):
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page, cursor = store.measurements_page(MeasurementFilter(), limit, cursor)
            assert len(page) <= limit
            seen += [m.id for m in page]
            if cursor is None:
                break
        assert sorted(seen) == sorted(r.id for r in records)
        order = [(r.measured_ms, uuid.UUID(r.id).bytes) for r in records]
        assert seen == [str(uuid.UUID(bytes=k)) for _, k in sorted(order, reverse=True)]
    page, cursor = store.measurements_page(MeasurementFilter(asn=0), 1000)
    assert {m.id for m in page} == {r.id for r in records[30:]}
    assert cursor is None
    assert all(m.asn is None and m.cc is None for m in page)
    page, _ = store.measurements_page(MeasurementFilter(cc="PK", verdict=records[0].verdict))
    assert {m.id for m in page} == {r.id for r in records[:30] if r.verdict == records[0].verdict}
    page, _ = store.measurements_page(MeasurementFilter(since_ms=T0 + 3000, until_ms=T0 + 5000))
    assert [m.measured_ms for m in page] == [T0 + 4000] * 4 + [T0 + 3000] * 4
    for bad in ("!!", "AAAA", "é"):
        with pytest.raises(BadCursor):
            store.measurements_page(MeasurementFilter(), 10, bad)


def test_agent_summaries_show_last_upload_and_no_key(store: Storage) -> None:
    store.add_agent("agent-2", "idle", b"\x02" * 32, 5)
    store.ingest(AGENT, batch(2, T0), 1, "PK", T0 + 100)
    store.ingest(AGENT, batch(2, T0 + 9000), 1, "PK", T0 + 200)
    store.revoke_agent("agent-2", 10)
    first, second = store.agent_summaries()
    assert (first.id, first.last_seen_ms, first.revoked_ms) == (AGENT, T0 + 200, None)
    assert (second.id, second.name, second.last_seen_ms, second.revoked_ms) == (
        "agent-2",
        "idle",
        None,
        10,
    )
    assert len(first.key_fingerprint) == 64
    assert first.key_fingerprint != second.key_fingerprint


async def _every_page(
    client: TestClient[web.Request, web.Application],
    params: dict[str, str],
    headers: dict[str, str] | None = None,
) -> list[Any]:
    """The measurements of every page of ``GET /measurements``, the cursor followed to the end."""
    seen: list[dict[str, Any]] = []
    while True:
        response = await client.get(MEASUREMENTS_PATH, params=params, headers=headers)
        page = await response.json()
        seen += page["measurements"]
        if page["next_cursor"] is None:
            return seen
        params = {**params, "cursor": page["next_cursor"]}


async def _pages_of(
    client: TestClient[web.Request, web.Application],
    uploaded: list[SiteMeasurement],
    agent_id: str,
    token: dict[str, str],
) -> None:
    """Every page of the uploaded measurements: decoded, with their agent for the operator,
    and the same without it (nor when it was received) for the public."""
    seen = await _every_page(client, {"limit": "10", "asn": "0"}, token)
    assert sorted(m["id"] for m in seen) == sorted(m.id for m in uploaded)
    by_id = {m.id: m for m in uploaded}
    for view in seen:
        original = by_id[str(view["id"])]
        assert view["verdict"] == original.verdict.verdict
        assert view["evidence"] == json.loads(json.dumps(dict(original.verdict.evidence)))
        assert view["target"] == original.url
        assert view["agent_id"] == agent_id
        assert (view["asn"], view["cc"]) == (None, None)
        assert isinstance(view["received_ms"], int)
    public = await _every_page(client, {"limit": "10", "asn": "0"})
    assert [m["id"] for m in public] == [m["id"] for m in seen]
    assert all("agent_id" not in m and "received_ms" not in m for m in public)
    assert public[0] == {k: v for k, v in seen[0].items() if k not in ("agent_id", "received_ms")}


@pytest.mark.asyncio
async def test_http_queries_on_uploaded_batches(storage_url: str) -> None:
    async with running(Settings(db_url=storage_url)) as client:
        storage = client.app[STORAGE]
        agent_id, key = await enrolled(client)
        uploaded = recent(25)
        response = await client.post(
            MEASUREMENTS_PATH, data=encode_batch(agent_id, 1, uploaded, key), headers=MSGPACK
        )
        assert response.status == 200, await response.text()
        storage.ingest(agent_id, many("a.example", "tls.reset", 3, T0), 64500, "PK", T0)

        body = await (await client.get(BLOCKING_PATH, params={"cc": "pk", "asn": "AS64500"})).json()
        assert body == {
            "rows": [
                {
                    "domain": "a.example",
                    "asn": 64500,
                    "cc": "PK",
                    "counts": {"tls.reset": 3},
                    "total": 3,
                    "dominant": "tls.reset",
                }
            ]
        }
        everything = await (await client.get(BLOCKING_PATH)).json()
        from_rollups = {(d, a, c, v): n for (d, a, c, v), n in storage.rollup_counts().items()}
        assert {
            (row["domain"], row["asn"], row["cc"], v): n
            for row in everything["rows"]
            for v, n in row["counts"].items()
        } == from_rollups
        since = "2023-11-14T00:00:00Z"  # T0 as ISO 8601
        timeline = await (
            await client.get(
                TIMELINE_PATH, params={"asn": "64500", "since": since, "bucket": "day"}
            )
        ).json()
        assert timeline == {
            "bucket": "day",
            "points": [{"start_ms": T0, "counts": {"tls.reset": 3}, "total": 3}],
        }

        token = operator(client)
        await _pages_of(client, uploaded, agent_id, token)
        agents = (await (await client.get(AGENTS_PATH, headers=token)).json())["agents"]
        assert [a["id"] for a in agents] == [agent_id]
        assert agents[0]["last_seen_ms"] is not None
        assert "public_key" not in agents[0]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "params"),
    [
        (BLOCKING_PATH, {"cc": "PAK"}),
        (BLOCKING_PATH, {"cc": "1x"}),
        (BLOCKING_PATH, {"asn": "big"}),
        (BLOCKING_PATH, {"asn": "-1"}),
        (BLOCKING_PATH, {"asn": str(2**32)}),
        (BLOCKING_PATH, {"since": "yesterday"}),
        (BLOCKING_PATH, {"since": "2000", "until": "1000"}),
        (BLOCKING_PATH, {"domain": "a b"}),
        (BLOCKING_PATH, {"contry": "PK"}),
        (TIMELINE_PATH, {"bucket": "week"}),
        (MEASUREMENTS_PATH, {"limit": "0"}),
        (MEASUREMENTS_PATH, {"limit": "1001"}),
        (MEASUREMENTS_PATH, {"limit": "ten"}),
        (MEASUREMENTS_PATH, {"cursor": "not-a-cursor"}),
        (MEASUREMENTS_PATH, {"verdict": "x" * 65}),
        (AGENTS_PATH, {"all": "1"}),
    ],
)
async def test_bad_parameters_are_400_json(
    tmp_path: Path, path: str, params: dict[str, str]
) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        response = await client.get(path, params=params, headers=operator(client))
        assert response.status == 400, await response.text()
        assert "error" in await response.json()


_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.mark.asyncio
async def test_openapi_describes_exactly_the_registered_routes(tmp_path: Path) -> None:
    spec = json.loads((REPO / "docs" / "openapi.json").read_text())
    assert spec["openapi"].startswith("3.1")
    documented = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method in _METHODS
    }
    planned = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in _METHODS and op.get("x-planned")
    }
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        registered = {
            (route.resource.canonical, route.method)
            for route in client.app.router.routes()
            if route.resource is not None and route.method not in ("HEAD", "*")
        }
    assert registered - documented == set(), "routes missing from docs/openapi.json"
    assert documented - registered - planned == set(), "documented routes the app lacks"


def test_dominant_ignores_non_blocking_verdicts_and_breaks_ties_by_name() -> None:
    assert dominant({"ok": 50, "tls.reset": 2, "dns.injected": 2, "down": 9}) == "dns.injected"
    assert dominant({"ok": 1, "offline": 3, "inconclusive": 2}) is None
    assert dominant({"http.blockpage": 0}) is None
    assert dominant({}) is None

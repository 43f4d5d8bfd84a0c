"""The export's stream (collector.export.stream and collector.storage.export) on SQLite and
PostgreSQL: every stored row exactly once, oldest first, across page boundaries that split
rows of the same millisecond; the query's filters; the JSON lines equal to what
``/api/v1/measurements`` shows of each stored measurement."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agent.model.measurement import Target
from agent.wire.json import measurement_obj
from collector.evidence.query import EvidenceQuery
from collector.export.jsonl import plain
from collector.export.stream import ExportStream
from collector.storage import Storage, open_storage
from collector.storage.queries import QueryCancelled
from collector.web.queries import measurement_view
from tests.collector.export.data import AGENT_2, T0, TIED_MS, Stored, fill
from tests.collector.storage.records import AGENT, recorded

EVERYTHING = EvidenceQuery(None, (), 0, 2**62)


@pytest.fixture
def stored(storage_url: str) -> Iterator[tuple[Storage, list[Stored]]]:
    storage = open_storage(storage_url)
    storage.add_agent(AGENT, "test agent", b"\x01" * 32, 0)
    try:
        yield storage, fill(storage)
    finally:
        storage.close()


def lines(storage: Storage, query: EvidenceQuery, fmt: str = "jsonl", **kw: Any) -> list[Any]:
    stream = ExportStream(storage, query, fmt, **kw)
    out = []
    while (chunk := stream.next_chunk()) is not None:
        out += [json.loads(line) for line in chunk.decode().splitlines()]
    assert stream.rows == len(out)
    return out


@pytest.mark.parametrize("page_rows", [1, 3, 4, 5, 1000])
def test_every_row_once_in_order_across_pages(
    stored: tuple[Storage, list[Stored]], page_rows: int
) -> None:
    storage, expected = stored
    assert sum(s.row.measured_ms == TIED_MS for s in expected) == 5
    got = lines(storage, EVERYTHING, page_rows=page_rows)
    assert [row["id"] for row in got] == [s.row.id for s in expected]


def test_jsonl_rows_are_the_stored_measurements(stored: tuple[Storage, list[Stored]]) -> None:
    storage, expected = stored
    public = lines(storage, EVERYTHING, page_rows=7)
    operator = lines(storage, EVERYTHING, page_rows=7, operator=True)
    for s, row, full in zip(expected, public, operator, strict=True):
        assert row == measurement_view(s.row, operator=False)
        assert full == measurement_view(s.row, operator=True)
        obj = json.loads(
            json.dumps(measurement_obj(Target.parse(s.measurement.url), s.measurement))
        )
        assert row == {**obj, "asn": s.row.asn, "cc": s.row.cc}
        assert "agent_id" not in row
        assert "received_ms" not in row
        assert (full["agent_id"], full["received_ms"]) == (s.row.agent_id, s.row.received_ms)
    assert {row["agent_id"] for row in operator} == {AGENT, AGENT_2}


def test_filters_domain_networks_and_period(stored: tuple[Storage, list[Stored]]) -> None:
    storage, expected = stored

    def ids(query: EvidenceQuery) -> list[str]:
        return [row["id"] for row in lines(storage, query, page_rows=2)]

    def want(keep: Any) -> list[str]:
        return [s.row.id for s in expected if keep(s)]

    domain = Target.parse(expected[0].measurement.url).host
    assert ids(EvidenceQuery(domain, (), 0, 2**62)) == want(
        lambda s: Target.parse(s.measurement.url).host == domain
    )
    assert ids(EvidenceQuery(None, (64501,), 0, 2**62)) == want(lambda s: s.row.asn == 64501)
    assert ids(EvidenceQuery(None, (0, 64501), 0, 2**62)) == want(
        lambda s: s.row.asn in (None, 64501)
    )
    since, until = T0 + 5_000, TIED_MS + 1
    assert ids(EvidenceQuery(None, (), since, until)) == want(
        lambda s: since <= s.row.measured_ms < until
    )
    assert ids(EvidenceQuery("nothing.example", (), 0, 2**62)) == []


def test_ooni_lines_one_per_row(stored: tuple[Storage, list[Stored]]) -> None:
    storage, expected = stored
    got = lines(storage, EVERYTHING, "ooni", page_rows=3)
    assert [row["id"] for row in got] == [s.row.id for s in expected]
    assert [row["test_keys"]["x_netsonde"]["verdict"] for row in got] == [
        s.row.verdict for s in expected
    ]
    assert all("agent" not in json.dumps(row["annotations"]) for row in got)


def test_a_cancelled_stream_stops(stored: tuple[Storage, list[Stored]]) -> None:
    storage, _ = stored
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(QueryCancelled):
        ExportStream(storage, EVERYTHING, "jsonl").next_chunk(cancelled)


def test_unknown_format_is_refused(stored: tuple[Storage, list[Stored]]) -> None:
    with pytest.raises(ValueError, match="format"):
        ExportStream(stored[0], EVERYTHING, "csv")


@pytest.mark.parametrize("m", recorded(), ids=lambda m: m.verdict.verdict)
def test_plain_is_asdict_as_json_reads_it(m: Any) -> None:
    assert plain(m) == json.loads(json.dumps(dataclasses.asdict(m)))

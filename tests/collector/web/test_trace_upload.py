"""A trace through the real app, on SQLite and PostgreSQL: a signed batch with a trace record is
stored and counted as the site test is; the query API, the export and the dashboard's page add
the AS of ``after_hop`` from the collector's ASN database and hide, publicly, the routers that
could point at the agent; reclassification leaves all that as it was; a malformed trace
record is refused whole with the decoder's message; the OONI export leaves traces out."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent.api.paths import EXPORT_PATH, MEASUREMENTS_PATH
from agent.wire.batch import SIGNATURE_DOMAIN, VERSION, encode_batch
from agent.wire.record import measurement_to_obj
from collector.config import Settings
from collector.reclassify_cli import run_reclassify
from collector.web.keys import STORAGE
from tests.collector.app_client import MSGPACK, enrolled, operator, recent, running
from tests.collector.test_enrich import write_mmdb
from tests.collector.traces import AFTER, CPE, ISP, trace_measurement

Client = TestClient[web.Request, web.Application]
RANGES = {
    "198.51.100.0/24": {"autonomous_system_number": 64500,
                        "autonomous_system_organization": "Example"},
    "100.64.0.0/10": {"autonomous_system_number": 64501,
                      "autonomous_system_organization": "Lab ISP"},
}  # fmt: skip


async def _measurements(client: Client, headers: dict[str, str] | None = None) -> Any:
    params = {"domain": "blocked.example"}
    response = await client.get(MEASUREMENTS_PATH, params=params, headers=headers or {})
    assert response.status == 200, await response.text()
    return (await response.json())["measurements"]


async def _export(client: Client, fmt: str, headers: dict[str, str] | None = None) -> list[Any]:
    params = {"format": fmt, "domain": "blocked.example", "since": "0"}
    response = await client.get(EXPORT_PATH, params=params, headers=headers or {})
    assert response.status == 200, await response.text()
    return [json.loads(line) for line in (await response.text()).splitlines()]


def _routers(view: dict[str, Any]) -> list[str | None]:
    return [a["router"] for a in view["trace"]["attempts"]]


@pytest.mark.asyncio
async def test_a_signed_trace_is_stored_counted_and_shown(storage_url: str, tmp_path: Path) -> None:
    geoip = write_mmdb(tmp_path / "asn.mmdb", RANGES)
    trace = trace_measurement(started_ms=int(time.time() * 1000) - 60_000)
    async with running(Settings(db_url=storage_url, geoip=(geoip,))) as client:
        agent_id, key = await enrolled(client)
        data = encode_batch(agent_id, 1, [*recent(2), trace], key)
        response = await client.post(MEASUREMENTS_PATH, data=data, headers=MSGPACK)
        assert response.status == 200, await response.text()
        assert trace.id in (await response.json())["stored"]
        # Counted as a site test of the same name would be (docs/design/013-trace.md).
        counts = client.app[STORAGE].rollup_counts("blocked.example")
        assert counts == {("blocked.example", 0, "", "tls.reset"): 1}

        [public] = await _measurements(client)
        evidence = public["evidence"]
        assert (evidence["after_hop"], evidence["after_hop_asn"]) == (AFTER, 64500)
        assert evidence["after_hop_as_name"] == "Example"
        assert evidence["routers"] == f"* * {AFTER}"
        assert CPE not in json.dumps(public)
        assert ISP not in json.dumps(public)
        assert set(_routers(public)) == {"*", AFTER, "198.51.100.250", None}
        assert "agent_id" not in public
        op = operator(client)
        [full] = await _measurements(client, op)
        assert full["evidence"]["routers"] == f"{CPE} {ISP} {AFTER}"
        assert full["evidence"]["after_hop_asn"] == 64500
        assert {CPE, ISP} <= set(_routers(full))

        # The export renders the same objects; OONI's Web Connectivity has no keys for a trace.
        assert await _export(client, "jsonl") == [public]
        assert await _export(client, "jsonl", op) == [full]
        assert await _export(client, "ooni") == []

        # Nothing of the annotation is stored: reclassification cannot lose it.
        assert run_reclassify(storage_url, []) == 0
        assert await _measurements(client) == [public]
        assert await _measurements(client, op) == [full]


def _signed(agent_id: str, key: Any, record: dict[str, Any]) -> bytes:
    body = {"v": VERSION, "a": agent_id, "s": 1, "t": int(time.time() * 1000), "m": [record]}
    packed = msgpack.packb(body, use_bin_type=True)
    envelope = {"b": packed, "g": key.sign(SIGNATURE_DOMAIN + packed)}
    return msgpack.packb(envelope, use_bin_type=True)  # type: ignore[no-any-return]


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def mutate(obj: dict[str, Any]) -> None:
        for step in path[:-1]:
            obj = obj[step]
        obj[path[-1]] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set(("R", "x", 0, "t"), 256), "measurement.trace.attempts[0].ttl: 256 outside"),
        (_set(("R", "x", 0, "r"), "x" * 17), "measurement.trace.attempts[0].reaction"),
        (_set(("R", "x", 0, "a"), b"\x01\x02\x03"), "measurement.trace.attempts[0].router"),
        (
            _set(("R", "e"), [{"a": b"\xc0\x00\x02\x50", "p": 80}] * 5),
            "measurement.trace.references",
        ),
        (lambda o: o["R"].pop("g"), "measurement.trace.benign"),
        (_set(("v",), 1), "measurement.R: needs schema version 2"),
    ],
)
@pytest.mark.asyncio
async def test_a_malformed_trace_record_refuses_its_batch(
    tmp_path: Path, mutate: Any, message: str
) -> None:
    record = measurement_to_obj(trace_measurement(started_ms=int(time.time() * 1000) - 60_000))
    record = copy.deepcopy(record)
    mutate(record)
    async with running(Settings(db_url=f"sqlite:///{tmp_path / 'c.db'}")) as client:
        agent_id, key = await enrolled(client)
        response = await client.post(
            MEASUREMENTS_PATH, data=_signed(agent_id, key, record), headers=MSGPACK
        )
        assert response.status == 400
        error = (await response.json())["error"]
        assert message in error, error
        assert client.app[STORAGE].rollup_counts() == {}

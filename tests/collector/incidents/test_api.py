"""GET /api/v1/incidents: the incidents of a period with the thresholds `serve` was given,
networks and counts for the public and never an agent. Real app, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from agent.api.paths import INCIDENTS_PATH
from collector.config import Settings
from collector.storage import open_storage
from collector.thresholds import Thresholds
from tests.collector.app_client import operator, running
from tests.collector.incidents.stored import HOUR, T0, Filler

WINDOW = {"since": str(T0 - HOUR), "until": str(T0 + 48 * HOUR)}


def filled(url: str) -> None:
    storage = open_storage(url)
    try:
        fill = Filler(storage)
        fill.add("tls.reset tls.reset tls.reset ok", "x.com", T0, agent="volunteer-a")
        fill.add("dns.nxdomain " * 3, "x.com", T0, asn=64501, agent="volunteer-b")
        fill.add("ok ok ok ok", "dawn.com", T0, agent="volunteer-a")
        fill.checks("volunteer-a", "++---+", T0 + 24 * HOUR)
    finally:
        storage.close()


@pytest.mark.asyncio
async def test_incidents_are_served_with_networks_and_counts_but_no_agent(
    storage_url: str,
) -> None:
    filled(storage_url)
    async with running(Settings(db_url=storage_url)) as client:
        response = await client.get(INCIDENTS_PATH, params=WINDOW)
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        # The operator sees the same: nothing here is agent-level.
        as_operator = await client.get(INCIDENTS_PATH, params=WINDOW, headers=operator(client))
        assert await as_operator.json() == body
    assert "volunteer" not in str(body)
    assert body["thresholds"]["min_blocking"] == 3
    outage, blocked = body["incidents"]
    assert (outage["kind"], outage["domain"], outage["agents"]) == ("outage", None, 1)
    assert (blocked["kind"], blocked["domain"], blocked["ongoing"]) == ("blocking", "x.com", True)
    assert blocked["techniques"] == ["dns.nxdomain", "tls.reset"]
    assert [n["asn"] for n in blocked["networks"]] == [64500, 64501]
    assert (blocked["measurements"], blocked["blocking"], blocked["agents"]) == (7, 6, 2)
    assert blocked["start_ms"] == T0
    assert blocked["end_ms"] is None


@pytest.mark.asyncio
async def test_filters_and_configured_thresholds_apply(storage_url: str) -> None:
    filled(storage_url)
    async with running(Settings(db_url=storage_url)) as client:
        by_asn = await (
            await client.get(INCIDENTS_PATH, params={**WINDOW, "asn": "AS64501"})
        ).json()
        by_domain = await (
            await client.get(INCIDENTS_PATH, params={**WINDOW, "domain": "dawn.com"})
        ).json()
    assert [(i["kind"], [n["asn"] for n in i["networks"]]) for i in by_asn["incidents"]] == [
        ("blocking", [64501])
    ]
    assert by_domain["incidents"] == []
    stricter = Settings(db_url=storage_url, incidents=Thresholds(min_agents=2, outage_min_checks=4))
    async with running(stricter) as client:
        body = await (await client.get(INCIDENTS_PATH, params=WINDOW)).json()
    assert body["incidents"] == []
    assert body["thresholds"]["min_agents"] == 2


@pytest.mark.asyncio
async def test_without_a_period_it_is_the_last_seven_days(storage_url: str) -> None:
    async with running(Settings(db_url=storage_url)) as client:
        body = await (await client.get(INCIDENTS_PATH)).json()
    assert body["until_ms"] - body["since_ms"] == 7 * 24 * HOUR
    assert body["incidents"] == []


@pytest.mark.asyncio
async def test_bad_parameters_are_refused(storage_url: str) -> None:
    async with running(Settings(db_url=storage_url)) as client:
        for params in (
            {"cc": "PK"},
            {"agent": "volunteer-a"},
            {"asn": "x"},
            {"since": "2024-01-02", "until": "2024-01-01"},
            {"domain": "not a host"},
        ):
            response = await client.get(INCIDENTS_PATH, params=params)
            assert response.status == 400, params
            assert "error" in await response.json()


@pytest.mark.asyncio
async def test_the_public_asks_for_a_quarter_at_most_and_the_operator_for_more(
    storage_url: str,
) -> None:
    year = {"since": "2025-01-01", "until": "2026-01-01"}
    async with running(Settings(db_url=storage_url)) as client:
        public = await client.get(INCIDENTS_PATH, params=year)
        assert public.status == 400
        assert "at most 92 days" in (await public.json())["error"]
        quarter = {"since": "2025-01-01", "until": "2025-04-03"}
        assert (await client.get(INCIDENTS_PATH, params=quarter)).status == 200
        as_operator = await client.get(INCIDENTS_PATH, params=year, headers=operator(client))
        assert as_operator.status == 200

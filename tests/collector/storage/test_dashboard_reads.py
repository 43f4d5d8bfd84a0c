"""The dashboard's own reads, on SQLite and PostgreSQL: a measurement by id, and each
agent's newest connectivity check."""

from __future__ import annotations

import uuid

import pytest

from collector.storage import Storage
from collector.storage.dashboard import LatestCheck, latest_checks, measurement_by_id
from tests.collector.storage.records import AGENT, batch

T0 = 1_700_000_000_000


def test_a_measurement_by_its_id(storage: Storage) -> None:
    records = batch(3, T0)
    storage.ingest(AGENT, records, 64500, "PK", T0 + 5000)
    found = measurement_by_id(storage, records[1].id)
    assert found is not None
    assert (found.id, found.measured_ms, found.agent_id) == (records[1].id, T0 + 1000, AGENT)
    assert (found.asn, found.cc, found.verdict) == (64500, "PK", records[1].verdict)
    assert found.record == records[1].record
    assert measurement_by_id(storage, str(uuid.uuid4())) is None
    with pytest.raises(ValueError, match=r"UUID|hexadecimal"):
        measurement_by_id(storage, "not-an-id")


def test_each_agents_newest_check(storage: Storage) -> None:
    assert latest_checks(storage) == []
    storage.add_agent("agent-2", "second", b"\x02" * 32, 0)
    storage.add_agent("agent-3", "never checked", b"\x03" * 32, 0)
    storage.ingest(AGENT, [], 64500, "PK", T0, checks=[(T0 - 2000, True), (T0 - 1000, False)])
    storage.ingest("agent-2", [], None, None, T0, checks=[(T0 - 500, True)])
    storage.ingest("agent-2", [], 64501, "IR", T0 + 10, checks=[(T0 - 3000, False)])
    assert latest_checks(storage) == [
        LatestCheck(AGENT, T0 - 1000, False, 64500, "PK"),
        LatestCheck("agent-2", T0 - 500, True, None, None),
    ]

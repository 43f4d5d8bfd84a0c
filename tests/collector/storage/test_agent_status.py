"""Collector storage, on SQLite and PostgreSQL: what an agent's last accepted batch said of
it (version, spool depth, evictions; migration 0012) is kept on the agent in the write that
makes the batch its last, whichever way the write goes, and never by a refused batch."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect

from collector.storage import AgentStatus, BatchSeq, IngestRecord, ReplayedBatch, Storage
from collector.storage.engine import upgrade
from collector.storage.queries import AgentSummary
from tests.collector.storage.records import AGENT, batch
from tests.collector.storage.rollup_data import migrated

ASN, CC, NOW = 64500, "PK", 1_700_000_100_000
STATUS = AgentStatus("1.2.3", 40, 3, 7)


def seq(n: int, status: AgentStatus | None = STATUS) -> BatchSeq:
    return BatchSeq(n, bytes([n]) * 64, status=status)


def summary(storage: Storage) -> AgentSummary:
    (found,) = storage.agent_summaries()
    return found


def test_an_agent_has_no_status_until_a_batch_says_it(storage: Storage) -> None:
    found = summary(storage)
    assert (found.last_batch_ms, found.status) == (None, AgentStatus(None, None, None, None))
    storage.ingest(AGENT, batch(2), ASN, CC, NOW)  # without a sequence number: says nothing
    assert summary(storage).status == AgentStatus()


@pytest.mark.parametrize(
    ("records", "checks"),
    [
        (batch(3), []),  # SQLite: one statement
        ([], [(NOW, True)]),  # a heartbeat-only batch
        (None, []),  # a record stored already: SQLite's transaction
    ],
)
def test_the_last_batch_sets_the_status(
    storage: Storage, records: list[IngestRecord] | None, checks: list[tuple[int, bool]]
) -> None:
    first = batch(2, start_ms=1_700_000_500_000)
    storage.ingest(AGENT, first, ASN, CC, NOW - 1000, seq=seq(1, AgentStatus("1.0", 1, 1, 1)))
    if records is None:
        records = [first[0], *batch(1)]
    storage.ingest(AGENT, records, ASN, CC, NOW, checks, seq=seq(2))
    found = summary(storage)
    assert (found.last_batch_ms, found.status) == (NOW, STATUS)
    agent = storage.get_agent(AGENT)
    assert agent is not None
    assert agent.last_seq == 2


def test_a_refused_batch_leaves_the_status_and_a_silent_one_clears_it(storage: Storage) -> None:
    storage.ingest(AGENT, batch(1), ASN, CC, NOW, seq=seq(5))
    with pytest.raises(ReplayedBatch):
        storage.ingest(AGENT, batch(1, start_ms=1_700_000_900_000), ASN, CC, NOW + 1, [],
                       seq=seq(4, AgentStatus("6.6.6", 0, 0, 0)))  # fmt: skip
    assert (summary(storage).last_batch_ms, summary(storage).status) == (NOW, STATUS)
    # An older agent's batch (no spool depth, no version): what it did not say is unknown.
    silent = AgentStatus(None, None, None, 9)
    storage.ingest(AGENT, [], ASN, CC, NOW + 2, [(NOW, True)], seq=seq(6, silent))
    assert (summary(storage).last_batch_ms, summary(storage).status) == (NOW + 2, silent)


def test_migration_0012_down_and_up(storage: Storage) -> None:
    storage.ingest(AGENT, batch(2), ASN, CC, NOW, seq=seq(9))
    with migrated(storage.engine, command.downgrade, "0011") as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("agents")}
        assert not columns & {"version", "spool_records", "spool_checks", "evictions"}
        assert "last_batch_ms" not in columns
    upgrade(storage.engine)
    assert summary(storage).status == AgentStatus()
    agent = storage.get_agent(AGENT)
    assert agent is not None
    assert agent.last_seq == 9
    storage.ingest(AGENT, batch(1, start_ms=1_700_000_900_000), ASN, CC, NOW, seq=seq(10))
    assert summary(storage).status == STATUS

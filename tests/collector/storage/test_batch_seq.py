"""Collector storage, on SQLite and PostgreSQL: a batch becomes its agent's last in the
write that stores it, or nothing of it is stored (``ReplayedBatch``), whichever way the
write goes (SQLite's one statement, its transaction when a record is stored already, and
PostgreSQL's); migration 0010 down and up keeps agents and tokens."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect

from collector.storage import BatchSeq, ReplayedBatch, Storage
from collector.storage.engine import upgrade
from collector.storage.schema import operator_tokens
from tests.collector.storage.records import AGENT, batch
from tests.collector.storage.rollup_data import migrated

ASN, CC, NOW = 64500, "PK", 1_700_000_100_000


def signature(n: int) -> bytes:
    return bytes([n]) * 64


def test_a_batch_older_than_the_last_stores_nothing(storage: Storage) -> None:
    first, later = batch(3), batch(2, start_ms=1_700_000_500_000)
    storage.ingest(AGENT, first, ASN, CC, NOW, seq=BatchSeq(5, signature(5)))
    agent = storage.get_agent(AGENT)
    assert agent is not None
    assert (agent.last_seq, agent.last_signature) == (5, signature(5))
    before = storage.count_measurements(), storage.rollup_counts()
    refused = [
        (later, [], BatchSeq(4, signature(4))),  # older: every record new
        (later, [], BatchSeq(5, signature(6))),  # numbered alike, another batch
        (first[:1] + later, [], BatchSeq(3, signature(3))),  # a record stored already
        ([], [(NOW, True)], BatchSeq(4, signature(4))),  # checks only
    ]
    for records, checks, seq in refused:
        with pytest.raises(ReplayedBatch):
            storage.ingest(AGENT, records, ASN, CC, NOW, checks, seq=seq)
        assert (storage.count_measurements(), storage.rollup_counts()) == before, seq
    # The last batch again: taken, and nothing is new in it.
    again = storage.ingest(AGENT, first, ASN, CC, NOW, seq=BatchSeq(5, signature(5)))
    assert (again.stored, again.duplicates) == ([], [r.id for r in first])
    taken = storage.ingest(AGENT, later, ASN, CC, NOW, seq=BatchSeq(6, signature(6)))
    assert taken.stored == [r.id for r in later]
    agent = storage.get_agent(AGENT)
    assert agent is not None
    assert (agent.last_seq, agent.last_signature) == (6, signature(6))


def test_migration_0010_down_and_up(storage: Storage) -> None:
    storage.ingest(AGENT, batch(2), ASN, CC, NOW, seq=BatchSeq(9, signature(9)))
    storage.create_operator_token("grafana", NOW)
    with migrated(storage.engine, command.downgrade, "0009") as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("agents")}
        assert "last_signature" not in columns
        assert "last_seq" in columns
        assert not inspect(conn).has_table(operator_tokens.name)
    upgrade(storage.engine)
    agent = storage.get_agent(AGENT)
    # The number stays; with no signature the next batch is taken, whatever its number.
    assert agent is not None
    assert (agent.last_seq, agent.last_signature) == (9, None)
    storage.ingest(AGENT, batch(1, start_ms=1_700_000_900_000), ASN, CC, NOW,
                   seq=BatchSeq(1, signature(1)))  # fmt: skip
    assert storage.count_measurements() == 3
    assert storage.list_operator_tokens() == []

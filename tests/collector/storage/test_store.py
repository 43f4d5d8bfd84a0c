"""Collector storage on SQLite and PostgreSQL: migrations, idempotent ingest, rollback of a
rejected batch, rollups and reclassification."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from agent.model.measurement import SiteMeasurement
from agent.wire.record import encode_measurement
from collector.storage import IngestRecord, RejectedBatch, Storage, open_storage
from collector.storage.schema import HOUR_MS, metadata
from tests.collector.storage.helpers import counts_from_rows, stored_verdicts
from tests.collector.storage.records import AGENT, batch, clones, ingest_records, recorded

ASN, CC, NOW = 64500, "PK", 1_700_000_100_000


def test_migrations_build_the_schema_from_scratch(storage: Storage, storage_url: str) -> None:
    with storage.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0013"
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        tables = set(inspect(conn).get_table_names())
    assert {"agents", "enroll_tokens", "measurements", "rollups", "alembic_version"} <= tables
    assert "connectivity" in tables
    if storage.backend == "sqlite":
        with storage.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    storage.ingest(AGENT, batch(3), ASN, CC, NOW)
    again = open_storage(storage_url)  # a second open finds the schema current
    assert again.count_measurements() == 3
    again.close()


def test_ingest_stores_records_and_counts_rollups(storage: Storage) -> None:
    records = batch(40)
    result = storage.ingest(AGENT, records, ASN, CC, NOW)
    assert result.stored == [r.id for r in records]
    assert result.duplicates == []
    assert storage.count_measurements() == 40
    expected = Counter((r.domain, ASN, CC, r.verdict) for r in records)
    assert storage.rollup_counts() == expected
    domain = records[0].domain
    assert storage.rollup_counts(domain) == {k: n for k, n in expected.items() if k[0] == domain}


def test_rollups_are_per_hour_and_unknown_network_is_zero_and_empty(storage: Storage) -> None:
    first = batch(1, start_ms=5 * HOUR_MS + 10)
    same_hour = [first[0]._replace(key=uuid.uuid4().bytes, measured_ms=6 * HOUR_MS - 1)]
    next_hour = [first[0]._replace(key=uuid.uuid4().bytes, measured_ms=6 * HOUR_MS)]
    for records in (first, same_hour, next_hour):
        storage.ingest(AGENT, records, None, None, NOW)
    key = (first[0].domain, 0, "", first[0].verdict)
    assert storage.rollup_counts() == {key: 3}
    with storage.engine.connect() as conn:
        hours = conn.exec_driver_sql("SELECT hour_ms, count FROM rollups ORDER BY 1").all()
    assert [tuple(row) for row in hours] == [(5 * HOUR_MS, 2), (6 * HOUR_MS, 1)]


def test_reingest_is_all_duplicates_and_changes_nothing(storage: Storage) -> None:
    records = batch(25)
    storage.ingest(AGENT, records, ASN, CC, NOW)
    before = storage.rollup_counts()
    result = storage.ingest(AGENT, records, 64501, "IR", NOW + 1)
    assert result.stored == []
    assert sorted(result.duplicates) == sorted(r.id for r in records)
    assert storage.count_measurements() == 25
    assert storage.rollup_counts() == before


def test_mixed_batch_stores_only_the_new_records(storage: Storage) -> None:
    old, new = batch(10), batch(15, start_ms=1_700_001_000_000)
    storage.ingest(AGENT, old[:6], ASN, CC, NOW)
    result = storage.ingest(AGENT, old + new, ASN, CC, NOW)
    assert result.stored == [r.id for r in old[6:] + new]
    assert result.duplicates == [r.id for r in old[:6]]
    assert storage.count_measurements() == 25
    assert storage.rollup_counts() == Counter((r.domain, ASN, CC, r.verdict) for r in old + new)


def test_an_id_repeated_within_a_batch_is_stored_once(storage: Storage) -> None:
    records = batch(3)
    again = records[1]._replace(verdict="other.verdict")
    result = storage.ingest(AGENT, [*records, again], ASN, CC, NOW)
    assert result.stored == [r.id for r in records]
    assert result.duplicates == [records[1].id]
    assert sum(storage.rollup_counts().values()) == storage.count_measurements() == 3
    # The first of the repeated records is the one stored.
    assert "other.verdict" not in {key[-1] for key in storage.rollup_counts()}


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda r: r._replace(domain="a" * 300), id="oversized-domain"),
        pytest.param(lambda r: r._replace(verdict="v" * 65), id="oversized-verdict"),
        pytest.param(lambda r: r._replace(measured_ms=-1), id="before-epoch"),
    ],
)
def test_a_batch_failing_midway_leaves_nothing_stored(storage: Storage, spoil: object) -> None:
    assert callable(spoil)
    storage.ingest(AGENT, batch(5, start_ms=1_600_000_000_000), ASN, CC, NOW)
    before = storage.rollup_counts()
    records = batch(100)
    records[60] = spoil(records[60])
    with pytest.raises(RejectedBatch):
        storage.ingest(AGENT, records, ASN, CC, NOW)
    assert storage.count_measurements() == 5
    assert storage.rollup_counts() == before
    # Nothing of the rejected batch lingers: its good records go in afterwards, all new.
    del records[60]
    assert len(storage.ingest(AGENT, records, ASN, CC, NOW).stored) == 99


def test_a_batch_from_an_unknown_agent_is_rejected(storage: Storage) -> None:
    with pytest.raises(RejectedBatch):
        storage.ingest("no-such-agent", batch(10), ASN, CC, NOW)
    assert storage.count_measurements() == 0
    assert storage.rollup_counts() == {}


def test_an_id_that_is_not_a_uuid_is_refused_before_storage() -> None:
    with pytest.raises(ValueError, match="UUID"):
        IngestRecord.make(
            id="not-a-uuid", measured_ms=0, domain="x.com", url="https://x.com/", verdict="ok",
            record=b"",
        )  # fmt: skip


def test_record_keeps_the_wire_bytes_and_extracted_columns() -> None:
    m = clones(1)[0]
    (record,) = ingest_records([m])
    assert record.record == encode_measurement(m)
    assert (record.id, record.measured_ms, record.url) == (m.id, m.started_ms, m.url)
    assert record.verdict == m.verdict.verdict
    assert record.domain in m.url
    assert record.key == uuid.UUID(m.id).bytes


def test_reclassify_updates_changed_verdicts_and_rollups(storage: Storage) -> None:
    records = batch(3 * len(recorded()))
    storage.ingest(AGENT, records[:20], ASN, CC, NOW)
    storage.ingest(AGENT, records[20:], None, None, NOW)

    def stricter(m: SiteMeasurement) -> str:
        return "blocked" if m.verdict.verdict.startswith("dns.") else m.verdict.verdict

    dns = sum(r.verdict.startswith("dns.") for r in records)
    assert dns > 0
    result = storage.reclassify(stricter)
    assert (result.changed, result.total, result.undecodable) == (dns, len(records), 0)
    verdicts = stored_verdicts(storage)
    for r in records:
        assert verdicts[r.key] == ("blocked" if r.verdict.startswith("dns.") else r.verdict)
    assert storage.rollup_counts() == counts_from_rows(storage)
    assert not any(v.startswith("dns.") for _, _, _, v in storage.rollup_counts())
    # The recorded verdicts are what the current agent.verdict decides: nothing changes back
    # except what ``stricter`` changed.
    assert storage.reclassify(lambda m: m.verdict.verdict).changed == dns
    assert storage.rollup_counts() == Counter(
        (r.domain, ASN if i < 20 else 0, CC if i < 20 else "", r.verdict)
        for i, r in enumerate(records)
    )


def test_ingest_and_reclassify_run_on_worker_threads(storage: Storage) -> None:
    # As the app runs ingest: on its ingest threads, off the event loop.
    records = batch(10)

    async def run() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(storage.ingest_threads, thread_name_prefix="ingest") as threads:
            result = await loop.run_in_executor(
                threads, storage.ingest, AGENT, records, ASN, CC, NOW
            )
            again = await loop.run_in_executor(
                threads, storage.reclassify, lambda m: m.verdict.verdict
            )
        return len(result.stored), again.changed

    assert asyncio.run(run()) == (10, 0)

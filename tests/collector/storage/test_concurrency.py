"""Two collector processes ingesting into one database at the same time: overlapping and
identical batches, in opposite orders. Every id must be stored exactly once, each process
must report as stored exactly the ids it inserted, and the rollups must count every row
once. Runs on both backends; PostgreSQL is the one that scales out this way."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from collections.abc import Sequence

from collector.storage import IngestRecord, Storage, open_storage
from collector.storage.schema import rollup_totals, weekly_rollups
from tests.collector.storage.helpers import counts_from_rows, daily_counts_from_rows, table_counts
from tests.collector.storage.records import AGENT, batch

BATCH = 100
TOTAL = 3000
OVERLAP = slice(1000, 2000)  # ingested by both processes


def _ingest(
    url: str,
    batches: Sequence[Sequence[IngestRecord]],
    asn: int,
    start: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue[tuple[int, list[str], list[str]]],
) -> None:
    store = open_storage(url)
    stored: list[str] = []
    duplicates: list[str] = []
    start.wait(timeout=60)
    for records in batches:
        result = store.ingest(AGENT, records, asn, "PK", 0)
        stored += result.stored
        duplicates += result.duplicates
    store.close()
    results.put((asn, stored, duplicates))


def _chunks(records: list[IngestRecord]) -> list[list[IngestRecord]]:
    return [records[i : i + BATCH] for i in range(0, len(records), BATCH)]


def test_two_processes_ingest_overlapping_batches_at_once(
    storage: Storage, storage_url: str
) -> None:
    records = batch(TOTAL)
    first = _chunks(records[: OVERLAP.stop])  # 0..2000, in order
    second = _chunks(records[OVERLAP.start :])[::-1]  # 1000..3000, last batch first
    # Each also sends the same shuffled batch, straddling the overlap, at the same moment.
    same = records[OVERLAP.start - 150 : OVERLAP.start + 150][::-1]
    first.insert(0, same)
    second.insert(0, same)

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results: multiprocessing.Queue[tuple[int, list[str], list[str]]] = context.Queue()
    workers = [
        context.Process(target=_ingest, args=(storage_url, batches, asn, start, results))
        for asn, batches in ((64500, first), (64501, second))
    ]
    for worker in workers:
        worker.start()
    outcomes = {}
    for _ in workers:
        asn, stored, duplicates = results.get(timeout=120)
        outcomes[asn] = (stored, duplicates)
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0

    stored_a, dup_a = outcomes[64500]
    stored_b, dup_b = outcomes[64501]
    assert not set(stored_a) & set(stored_b), "an id was reported stored by both processes"
    assert set(stored_a) | set(stored_b) == {r.id for r in records}
    assert len(stored_a) + len(dup_a) == sum(len(b) for b in first)
    assert len(stored_b) + len(dup_b) == sum(len(b) for b in second)
    assert storage.count_measurements() == TOTAL
    rollups = storage.rollup_counts()
    assert sum(rollups.values()) == TOTAL
    assert rollups == counts_from_rows(storage)
    assert table_counts(storage, rollup_totals) == counts_from_rows(storage)
    assert table_counts(storage, weekly_rollups) == daily_counts_from_rows(storage)
    # Each process's rollups count exactly the rows it reported as stored.
    assert sum(n for (_, asn, _, _), n in rollups.items() if asn == 64500) == len(stored_a)

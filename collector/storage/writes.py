"""Collector storage: ingest's writes, statements run straight through the database drivers.

Ingest is the collector's hot path, and SQLAlchemy's per-row parameter handling cost more
than the databases' own inserts, so a batch's rows and rollup counts go to the driver
directly. Everything is prepared before the write transaction starts (:meth:`prepare`) and
the transaction only runs it: SQLite has one writer at a time, so the time a transaction
stays open bounds ingest, and each statement in it gives up the GIL while the database
works and must win it back from the threads checking the next batches. Each backend's
statements are in their own module: ``writes_sqlite`` (where a batch is first tried as one
statement that SQLite commits by itself) and ``writes_postgres``.

Rows go in sorted by id and rollups by key: concurrent ingests that overlap (PostgreSQL)
then take their row locks in the same order and cannot deadlock each other.
docs/design/003-storage.md has the argument.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collector.storage.records import IngestRecord
from collector.storage.schema import (
    HOUR_MS,
    UNKNOWN_ASN,
    UNKNOWN_CC,
    WEEKDAYS,
    week_start,
    weekday,
)

# A batch's counts per rollup table, hourly, weekly and all-time: each a sorted list of
# (*key, n...), the key being the table's primary key; a weekly row has an n per weekday.
RollupRows = tuple[list[tuple[Any, ...]], ...]


def rollup_rows(
    records: Sequence[IngestRecord], cell_of: Mapping[str, int], verdict_of: Mapping[str, int]
) -> RollupRows:
    """The counts ``records`` add to the three rollup tables; ``cell_of`` gives the cell id
    of each record's domain in the batch's one network, ``verdict_of`` each verdict's id."""
    hourly = Counter(
        (r.measured_ms - r.measured_ms % HOUR_MS, cell_of[r.domain], verdict_of[r.verdict])
        for r in records
    )
    weekly: dict[tuple[Any, ...], list[int]] = {}
    totals: Counter[tuple[Any, ...]] = Counter()
    for (hour, cell, verdict), n in hourly.items():
        week = (week_start(hour), cell, verdict)
        days = weekly.get(week)
        if days is None:
            days = weekly[week] = [0] * len(WEEKDAYS)
        days[weekday(hour)] += n
        totals[(cell, verdict)] += n
    return (
        [(*key, n) for key, n in sorted(hourly.items())],
        [(*key, *days) for key, days in sorted(weekly.items())],
        [(*key, n) for key, n in sorted(totals.items())],
    )


@dataclass(frozen=True)
class Prepared:
    """One batch's statements, ready to run: ``insert`` for its records, ``rollups`` for
    their counts, on the assumption that every record is new (recomputed if not)."""

    records: Sequence[IngestRecord]
    insert: Any
    rollups: Any


class Writes:
    """The ingest statements of one backend."""

    def __init__(
        self,
        agent_id: str,
        asn: int | None,
        cc: str | None,
        received_ms: int,
        cell_of: Mapping[str, int],
        verdict_of: Mapping[str, int],
        batch_seq: int | None = None,
    ) -> None:
        """``cell_of`` gives the cell id of each domain of the batch in its one network,
        ``verdict_of`` the id of each verdict (IdMap.create made any that were missing);
        ``batch_seq`` names the signed batch kept with the records, if one is."""
        self.agent_id, self.asn, self.cc, self.received_ms = agent_id, asn, cc, received_ms
        self.cell_of, self.verdict_of = cell_of, verdict_of
        self.batch_seq = batch_seq

    def prepare(self, records: Sequence[IngestRecord]) -> Prepared:
        """``records`` sorted by id and unique."""
        return Prepared(records, self.prepare_insert(records), self.prepare_rollups(records))

    def prepare_rollups(self, records: Sequence[IngestRecord]) -> Any:
        raise NotImplementedError

    def prepare_insert(self, records: Sequence[IngestRecord]) -> Any:
        raise NotImplementedError

    def run(self, driver: Any, prepared: Prepared) -> set[bytes] | None:
        """Inserts the new records and adds them to the rollups: None if every record was
        new (as nearly always), else the ids it inserted. No set of ids is built for the
        common case: this runs in the write transaction, which other batches wait for."""
        records = prepared.records
        if not records:
            return None
        inserted = self.insert(driver, prepared)
        if inserted is None:
            rollups = prepared.rollups
        elif inserted:  # some were stored already: count only the others
            rollups = self.prepare_rollups([r for r in records if r.key in inserted])
        else:
            return inserted
        self.add_rollups(driver, rollups)
        return inserted

    def insert(self, driver: Any, prepared: Prepared) -> set[bytes] | None:
        """The ids inserted, or None if that is all of them."""
        raise NotImplementedError

    def add_rollups(self, driver: Any, prepared: Any) -> None:
        raise NotImplementedError


def cell_network(asn: int | None, cc: str | None) -> tuple[int, str]:
    """A network as a cell names it: cells cannot hold NULL, so an unknown network has its
    own stand-ins."""
    return (UNKNOWN_ASN if asn is None else asn, UNKNOWN_CC if cc is None else cc)

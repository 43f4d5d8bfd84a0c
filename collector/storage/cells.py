"""Collector, storage: the blocking matrix's cells, (domain, asn, cc), and their integer ids.

The rollup tables count by cell id (schema ``cells``, migration 0007). An id never changes
once given, so each process keeps both directions in memory: ingest asks the database only
for cells it has not met, and a query only for the names of ids it has not met. Entries
are only ever added, so readers need no lock; writers take one so that two threads do not
both fetch the same rows.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping

from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from collector.storage.schema import cells

CellKey = tuple[str, int, str]  # domain, asn, cc (UNKNOWN_ASN, UNKNOWN_CC when unknown)
# Keys per statement: three parameters each, well under SQLite's 32,766.
_CHUNK = 1000


class Cells:
    def __init__(self) -> None:
        self._ids: dict[CellKey, int] = {}
        self._names: dict[int, CellKey] = {}
        self._lock = threading.Lock()

    def unknown(self, keys: Iterable[CellKey]) -> list[CellKey]:
        """The keys this process has no id for yet, sorted."""
        ids = self._ids
        return sorted({key for key in keys if key not in ids})

    def ids(self) -> Mapping[CellKey, int]:
        """Every id met so far, by key: complete for keys :meth:`create` was given."""
        return self._ids

    def create(self, conn: Connection, keys: Collection[CellKey]) -> None:
        """Gives ``keys`` ids, in the write transaction ``conn``: new cells are inserted (in
        key order, so concurrent writers lock them alike), then all of them read back."""
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        c = cells.c
        ordered = sorted(keys)
        with self._lock:
            for start in range(0, len(ordered), _CHUNK):
                chunk = ordered[start : start + _CHUNK]
                rows = [{"domain": d, "asn": a, "cc": cc} for d, a, cc in chunk]
                conn.execute(insert(cells).values(rows).on_conflict_do_nothing())
                found = conn.execute(
                    select(c.id, c.domain, c.asn, c.cc).where(
                        tuple_(c.domain, c.asn, c.cc).in_(chunk)
                    )
                )
                self._remember(found)

    def names(self, conn: Connection, ids: Iterable[int]) -> Mapping[int, CellKey]:
        """Every cell name met so far, by id: complete for ``ids``, which must exist."""
        names = self._names
        missing = {cell for cell in ids if cell not in names}
        if missing:
            c = cells.c
            with self._lock:
                # Ids grow as cells are added: those above the largest known are read in one
                # range, and any still missing below it (PostgreSQL may commit a smaller id
                # later) by their ids.
                newest = max(names, default=0)
                self._remember(
                    conn.execute(select(c.id, c.domain, c.asn, c.cc).where(c.id > newest))
                )
                rest = sorted(cell for cell in missing if cell not in names)
                for start in range(0, len(rest), _CHUNK):
                    chunk = rest[start : start + _CHUNK]
                    self._remember(
                        conn.execute(select(c.id, c.domain, c.asn, c.cc).where(c.id.in_(chunk)))
                    )
        return names

    def _remember(self, rows: Iterable[tuple[int, str, int, str]]) -> None:
        for cell, domain, asn, cc in rows:
            key = (domain, int(asn), cc)
            self._ids[key] = int(cell)
            self._names[int(cell)] = key

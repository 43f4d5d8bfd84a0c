"""Collector storage: the blocking matrix, the read side behind ``/api/v1/blocking``.

Runs the statement ``collector.storage.windows`` builds, compiled, on the driver's cursor
for speed, and builds the matrix's rows from its (cell, verdict, count) rows in one pass.
On PostgreSQL a large matrix is read in slices of cells, pipelined, so that the server
computes a slice while this process builds the rows of the one before.
docs/design/003-storage.md.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from itertools import chain, pairwise
from typing import Any

import msgspec
from sqlalchemy import Select, bindparam, select
from sqlalchemy.engine import Connection, Engine

from collector.storage.engine import READ_ONLY
from collector.storage.idmap import CellKey, IdMap
from collector.storage.windows import matrix_statement

# Verdicts that say nothing about interference: the dominant technique is chosen among
# the others, so a mostly reachable site still shows how it is blocked where it is.
NOT_BLOCKING = frozenset({"ok", "down", "offline", "inconclusive"})

_CELL_NAME = operator.attrgetter("domain", "asn", "cc")  # the matrix's order
_DOMAIN, _ASN, _CC = (operator.itemgetter(i) for i in range(3))  # of a cell's name
# The end marker after the last (cell, verdict, count) row.
_END = ((None, 0, 0),)

# PostgreSQL computes the matrix in slices of cell ids, pipelined: the server computes a
# slice while this process builds the rows of the one before (both took ~35 ms of the 7-day
# matrix one after the other). A slice of at least ~3,000 cells, at most 4 slices; smaller
# or filtered matrices are one statement.
_SLICE_CELLS = 3_000
_MAX_SLICES = 4
_LO, _HI = "cell_lo", "cell_hi"
_EVERY_CELL = (0, 2**63 - 1)


class BlockingRow(msgspec.Struct, frozen=True, gc=False):
    """One cell of the domain-by-network matrix; ``asn`` 0 and ``cc`` "" are unknown.

    A msgspec struct: the whole matrix is 10,000s of these. It is built faster than a
    frozen dataclass (whose ``__init__`` cost half of building the matrix) and encodes
    straight to the JSON object the API documents, fields in this order, with no dict per
    row. ``gc=False``: it never holds a cycle, and untracked it adds nothing to the garbage
    collector's counts, whose full collections cost a large share of a call."""

    domain: str
    asn: int
    cc: str
    counts: dict[str, int]
    total: int
    dominant: str | None


def dominant(counts: dict[str, int]) -> str | None:
    """The most frequent blocking verdict; ties go to the name that sorts first, so the
    answer does not depend on row order."""
    if counts.keys() <= NOT_BLOCKING:
        # Most cells of a matrix: no blocking verdict at all, told by one set comparison.
        return None
    best: str | None = None
    most = 0
    for verdict, n in counts.items():
        if verdict in NOT_BLOCKING:
            continue
        if n > most or (n == most and best is not None and verdict < best):
            best, most = verdict, n
    return best


def _cell_slices(newest: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges of cell ids covering every id; the last is open above, so cells
    added since this process last met one are in it too."""
    count = min(_MAX_SLICES, newest // _SLICE_CELLS)
    if count < 2:
        return [_EVERY_CELL]
    bounds = [0, *(newest * i // count for i in range(1, count)), _EVERY_CELL[1]]
    return list(pairwise(bounds))


def _fetched(
    conn: Connection, sql: str, params: Any, slices: list[tuple[int, int]]
) -> Iterator[Sequence[tuple[Any, ...]]]:
    """The rows of ``sql`` on the driver's cursor, inside ``conn``'s transaction, one slice
    of cells at a time. With several slices (PostgreSQL), in pipeline mode: the next slice's
    statement is sent before a slice's rows are handed out, so the server computes it while
    the caller builds those rows."""
    driver: Any = conn.connection.driver_connection
    if len(slices) == 1:
        cursor = driver.cursor()
        try:
            if conn.dialect.name == "postgresql":
                # Binary results: ~5 ms less of the server's formatting and of parsing ints
                # from text, for the 7-day matrix's 14,500 rows.
                cursor.execute(sql, params, binary=True)
            else:
                cursor.execute(sql, params)
            yield cursor.fetchall()
        finally:
            cursor.close()
        return
    with driver.pipeline():
        pending = _sent(driver, sql, params, slices[0])
        for following in slices[1:]:
            rows = pending.fetchall()
            pending.close()
            pending = _sent(driver, sql, params, following)
            yield rows
        rows = pending.fetchall()
        pending.close()
    yield rows


def _sent(driver: Any, sql: str, params: dict[str, Any], cells: tuple[int, int]) -> Any:
    # Never prepared: psycopg would prepare it after its fifth run, and PostgreSQL's generic
    # plan for any slice ran ~6-11 ms slower per matrix than planning each one.
    cursor = driver.cursor()
    cursor.execute(sql, {**params, _LO: cells[0], _HI: cells[1]}, binary=True, prepare=False)
    return cursor


class BlockingQueries:
    """``blocking``, a part of :class:`collector.storage.Storage`."""

    engine: Engine
    cells: IdMap[CellKey]
    verdicts: IdMap[str]

    def blocking(
        self,
        cc: str | None = None,
        asn: int | None = None,
        domain: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[BlockingRow]:
        """Verdict counts per (domain, asn, cc), sorted by domain then network.

        A window counts every hour that overlaps it (the rollups are hourly); the result is
        exactly the sum of those hourly rows, whichever rollup table it is read from."""
        with self.engine.connect() as conn:
            options: dict[str, Any] = {READ_ONLY: True}
            if conn.dialect.name == "postgresql":
                # One snapshot for the data-range lookup and the matrix, which reads only the
                # buckets that lookup saw holding data (read committed would give each
                # statement its own). SQLite's read transaction is one snapshot already.
                options["isolation_level"] = "REPEATABLE READ"
            conn = conn.execution_options(**options)
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # Parallel workers planned for a slice (the weeks' statistics invite
                    # them) took 15 ms where one process took 5: on a small server they
                    # compete with this process building the rows of the slice before.
                    conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
                query = matrix_statement(conn, cc, asn, domain, since_ms, until_ms)
                if query is None:
                    return []
                every_cell = cc is None and asn is None and domain is None
                return self._matrix_rows(conn, query, every_cell)

    def _matrix_rows(
        self, conn: Connection, query: Select[Any], every_cell: bool
    ) -> list[BlockingRow]:
        # Rows arrive sorted by cell id then verdict: one pass and no dictionary of cells,
        # since with 10,000s of cells this loop costs as much as the SQL. The rows come
        # straight from the driver's cursor (plain tuples; SQLAlchemy's Row objects and
        # result processing were a third of the fetch), a slice fetched at once (iterating a
        # psycopg cursor row by row cost ~30 ms more on 18,000 rows). The cells' names are
        # added after the last slice, and the matrix put in their order, which this process
        # keeps in memory (collector.storage.idmap).
        sql, params, slices = self._sliced(conn, query, every_cell)
        # Every verdict's name, read in this snapshot (a small table), before any slice: the
        # loop below then runs no statement of its own while the next slice is computed.
        verdict_names = self.verdicts.all_names(conn)
        places = self.verdicts.places()
        # Per cell, in row order: its id, counts, total and dominant verdict. Lists, not a
        # tuple per cell: 12,000 more objects for the garbage collector to track made its
        # full collections come every few calls (~60 ms each).
        present: list[int] = []
        all_counts: list[dict[str, int]] = []
        totals: list[int] = []
        dominants: list[str | None] = []
        cell_done, counts_done = present.append, all_counts.append
        total_done, dominant_done = totals.append, dominants.append
        # A cell's rows come in verdict id order; it is name order too unless a verdict's
        # place among the names falls below the one before it, and only then are its counts
        # sorted (sorting every cell's cost ~9 ms of the 12,000-cell matrix). The ~80% of
        # cells with no blocking verdict are told by one set comparison, not a call:
        # per-cell calls cost ~5 ms.
        counts: dict[str, int] = {}
        current, total, last, by_name = -1, 0, -1, True
        rows = chain.from_iterable(_fetched(conn, sql, params, slices))
        for cell, verdict, n in chain(rows, _END):
            if cell != current:
                if counts:
                    if not by_name:
                        counts = dict(sorted(counts.items()))
                    cell_done(current)
                    counts_done(counts)
                    total_done(total)
                    dominant_done(None if counts.keys() <= NOT_BLOCKING else dominant(counts))
                if cell is None:
                    break
                current, counts, total, last, by_name = cell, {}, 0, -1, True
            place = places[verdict]
            if place < last:
                by_name = False
            last = place
            counts[verdict_names[verdict]] = n
            total += n
        if not present:
            return []
        return self._in_name_order(conn, present, all_counts, totals, dominants)

    def _sliced(
        self, conn: Connection, query: Select[Any], every_cell: bool
    ) -> tuple[str, Any, list[tuple[int, int]]]:
        """The matrix's statement compiled for the driver, its parameters, and the slices of
        cells it is run for (one: every cell at once)."""
        slices = [_EVERY_CELL]
        if conn.dialect.name == "postgresql" and every_cell:
            slices = _cell_slices(self.cells.newest())
        if len(slices) > 1:
            whole = query.subquery("matrix")
            query = (
                select(whole)
                .where(whole.c.cell >= bindparam(_LO), whole.c.cell < bindparam(_HI))
                .order_by(whole.c.cell, whole.c.verdict)
            )
        compiled = query.compile(dialect=conn.dialect)
        params: Any = compiled.params
        if compiled.positiontup is not None:  # SQLite's "?" placeholders
            params = [params[name] for name in compiled.positiontup]
        return compiled.string, params, slices

    def _in_name_order(
        self,
        conn: Connection,
        present: list[int],
        all_counts: list[dict[str, int]],
        totals: list[int],
        dominants: list[str | None],
    ) -> list[BlockingRow]:
        """The matrix's rows, from its cells' columns in cell id order, in the cells' name
        order."""
        names = self.cells.names(conn, present)
        # Column by column, in C; zip(*named) would make an iterator object per cell.
        named = list(map(names.__getitem__, present))
        out = list(
            map(
                BlockingRow,
                map(_DOMAIN, named),
                map(_ASN, named),
                map(_CC, named),
                all_counts,
                totals,
                dominants,
            )
        )
        # Into the cells' name order. A matrix of most cells: every cell id the id map
        # knows, in that order, mapped to its row where it has one, all in C (sorting the
        # rows by name cost ~5 ms of 12,000). A few cells (one domain's, one network's):
        # sorted, rather than a pass over every cell there is.
        order = self.cells.in_name_order()
        if len(out) * 16 < len(order):
            out.sort(key=_CELL_NAME)
            return out
        row_of = dict(zip(present, out, strict=True))
        return list(filter(None, map(row_of.get, order)))

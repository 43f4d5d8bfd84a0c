"""Collector, storage: the blocking matrix, the read side behind ``/api/v1/blocking``.

It reads only the rollups (never ``measurements``): its cost grows with the number of
(bucket, cell, verdict) rows in the window, not with the number of measurements. It reads
the coarsest rollups that answer exactly: ``rollup_totals`` for all time; for a window its
whole weeks from ``weekly_rollups``, the whole days around them from ``daily_rollups`` and
the hours around those from ``rollups``, or the totals minus what lies outside, whichever
reads fewer rows. SQLAlchemy Core statements, run compiled on the driver's cursor for
speed; the same on SQLite and PostgreSQL. docs/design/003-storage.md.
"""

from __future__ import annotations

import operator
from itertools import chain
from typing import Any

import msgspec
from sqlalchemy import BigInteger, ColumnElement, Select, Table, cast, func, select, union_all
from sqlalchemy.engine import Connection, Engine

from collector.storage.engine import READ_ONLY
from collector.storage.idmap import CellKey, IdMap
from collector.storage.schema import (
    DAY_MS,
    HOUR_MS,
    WEEK_MS,
    cells,
    daily_rollups,
    rollup_totals,
    rollups,
    week_start,
    weekly_rollups,
)

# Verdicts that say nothing about interference: the dominant technique is chosen among
# the others, so a mostly reachable site still shows how it is blocked where it is.
NOT_BLOCKING = frozenset({"ok", "down", "offline", "inconclusive"})

_CELL_NAME = operator.attrgetter("domain", "asn", "cc")  # the matrix's order
# Of a (cell, verdict, count) row; the end marker follows the last row.
_CELL, _VERDICT = operator.itemgetter(0), operator.itemgetter(1)
_END = ((None, 0, 0),)


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


def rollup_window(
    cc: str | None, asn: int | None, domain: str | None, since_ms: int | None, until_ms: int | None
) -> list[ColumnElement[bool]]:
    r = rollups.c
    where = _in_cells(rollups, cc, asn, domain)
    # Rollups are hourly: a bound inside an hour takes in that whole hour.
    if since_ms is not None:
        where.append(r.hour_ms >= since_ms - since_ms % HOUR_MS)
    if until_ms is not None:
        where.append(r.hour_ms < until_ms)
    return where


# A window is answered either directly (its whole weeks, days and hours) or as the all-time
# totals minus what lies outside it, whichever reads fewer rows. Costs are in buckets of
# data: in sparse data a week, a day and the totals each hold about one row per cell and
# verdict (12.7k a day, 14.2k a week, 18.6k in all in the benchmark), so it is the number
# of buckets that costs, not their width; an hour weighs 1/24 of a day. The totals count
# as 3, as before the weekly level.
_TOTALS_COST = 3.0

# [lo, hi) in Unix ms, None where unbounded.
_Span = tuple[int | None, int | None]
# A part of a window: the rollup table, its bucket-start column, the bucket starts it takes.
_Bucket = tuple[Table, str, _Span]
# The same, bounded on both sides.
_Clipped = tuple[Table, str, tuple[int, int]]
_WIDTH = {"week_ms": WEEK_MS, "day_ms": DAY_MS, "hour_ms": HOUR_MS}


def _buckets(lo: int | None, hi: int | None) -> list[_Bucket]:
    """The hour-aligned window [lo, hi) as its whole ISO weeks, then the whole UTC days on
    either side, then the hours on either side of those."""
    week_lo = None if lo is None else week_start(lo + WEEK_MS - 1)
    week_hi = None if hi is None else week_start(hi)
    if week_lo is not None and week_hi is not None and week_lo >= week_hi:
        return _days_and_hours(lo, hi)
    out: list[_Bucket] = [(weekly_rollups, "week_ms", (week_lo, week_hi))]
    if lo is not None and week_lo is not None and lo < week_lo:
        out += _days_and_hours(lo, week_lo)
    if hi is not None and week_hi is not None and week_hi < hi:
        out += _days_and_hours(week_hi, hi)
    return out


def _days_and_hours(lo: int | None, hi: int | None) -> list[_Bucket]:
    """The hour-aligned window [lo, hi) as whole UTC days, and the hours on either side."""
    day_lo = None if lo is None else -(-lo // DAY_MS) * DAY_MS
    day_hi = None if hi is None else hi - hi % DAY_MS
    if day_lo is not None and day_hi is not None and day_lo >= day_hi:
        return [(rollups, "hour_ms", (lo, hi))]
    out: list[_Bucket] = [(daily_rollups, "day_ms", (day_lo, day_hi))]
    if lo is not None and day_lo is not None and lo < day_lo:
        out.append((rollups, "hour_ms", (lo, day_lo)))
    if hi is not None and day_hi is not None and day_hi < hi:
        out.append((rollups, "hour_ms", (day_hi, hi)))
    return out


def _clip(parts: list[_Bucket], data: tuple[int, int]) -> list[_Clipped]:
    """The parts narrowed to the buckets that can hold data [first, end) (whole UTC days),
    bounded on both sides; parts with none are left out."""
    out: list[_Clipped] = []
    for table, start, (lo, hi) in parts:
        width = _WIDTH[start]
        # The bucket holding the first day of data: buckets before it are empty.
        floor = week_start(data[0]) if width == WEEK_MS else data[0] - data[0] % width
        first = floor if lo is None else max(lo, floor)
        end = data[1] if hi is None else min(hi, data[1])
        if end > first:
            out.append((table, start, (first, end)))
    return out


def _cost(parts: list[_Clipped]) -> float:
    """How many buckets the clipped parts read; an hour counts as 1/24."""
    cost = 0.0
    for _table, start, (lo, hi) in parts:
        width = _WIDTH[start]
        buckets = -(-(hi - lo) // width)
        cost += buckets / 24 if width == HOUR_MS else buckets
    return cost


def _part(
    table: Table, start: str | None, span: _Span, sign: int, where: list[ColumnElement[bool]]
) -> Select[Any]:
    """The rows of ``table`` whose ``start`` column lies in ``span``, counts times ``sign``."""
    c = table.c
    bounds = list(where)
    if start is not None and span[0] is not None:
        bounds.append(c[start] >= span[0])
    if start is not None and span[1] is not None:
        bounds.append(c[start] < span[1])
    count = c["count"] if sign > 0 else -c["count"]
    return select(c.cell, c.verdict, count.label("n")).where(*bounds)


def _in_cells(
    table: Table, cc: str | None, asn: int | None, domain: str | None = None
) -> list[ColumnElement[bool]]:
    """A rollup table's rows in the cells that match the filters (none: every row)."""
    c = cells.c
    where: list[ColumnElement[bool]] = []
    if domain is not None:
        where.append(c.domain == domain)
    if asn is not None:
        where.append(c.asn == asn)
    if cc is not None:
        where.append(c.cc == cc)
    return [table.c.cell.in_(select(c.id).where(*where))] if where else []


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
                return self._blocking_rows(conn, cc, asn, domain, since_ms, until_ms)

    def _blocking_rows(
        self,
        conn: Connection,
        cc: str | None,
        asn: int | None,
        domain: str | None,
        since_ms: int | None,
        until_ms: int | None,
    ) -> list[BlockingRow]:
        # Rows arrive sorted by cell id then verdict: one pass and no dictionary of cells,
        # since with 10,000s of cells this loop costs as much as the SQL. The rows come
        # straight from the driver's cursor (plain tuples; SQLAlchemy's Row objects and
        # result processing were a third of the fetch), fetched at once (iterating a psycopg
        # cursor row by row cost ~30 ms more on 18,000 rows). The matrix is then put in the
        # order of the cells' names, which this process keeps in memory
        # (collector.storage.idmap).
        out: list[BlockingRow] = []
        append = out.append
        query = self._blocking_query(conn, cc, asn, domain, since_ms, until_ms)
        if query is None:
            return out
        compiled = query.compile(dialect=conn.dialect)
        params: Any = compiled.params
        if compiled.positiontup is not None:  # SQLite's "?" placeholders
            params = [params[name] for name in compiled.positiontup]
        # The driver's cursor, inside this transaction; every count column is a BIGINT
        # (sums cast back), so both drivers hand out ints.
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if conn.dialect.name == "postgresql":
                # Binary results: ~5 ms less of the server's formatting and of parsing ints
                # from text, for the 7-day matrix's 14,500 rows.
                cursor.execute(compiled.string, params, binary=True)
            else:
                cursor.execute(compiled.string, params)
            rows = cursor.fetchall()
        finally:
            cursor.close()
        present = dict.fromkeys(map(_CELL, rows))  # the cells in row order, each once
        names = self.cells.names(conn, present)
        verdict_names = self.verdicts.names(conn, set(map(_VERDICT, rows)))
        # A cell's rows come in verdict id order; it is name order too unless a verdict's
        # place among the names falls below the one before it, and only then are its counts
        # sorted (sorting every cell's cost ~9 ms of the 12,000-cell matrix). The row is
        # built inline, and the ~80% of cells with no blocking verdict are told by one set
        # comparison, not a call: per-cell calls cost ~5 ms.
        places = self.verdicts.places()
        counts: dict[str, int] = {}
        current, total, last, by_name = -1, 0, -1, True
        for cell, verdict, n in chain(rows, _END):
            if cell != current:
                if counts:
                    if not by_name:
                        counts = dict(sorted(counts.items()))
                    append(
                        BlockingRow(
                            *names[current],
                            counts,
                            total,
                            None if counts.keys() <= NOT_BLOCKING else dominant(counts),
                        )
                    )
                if cell is None:
                    break
                current, counts, total, last, by_name = cell, {}, 0, -1, True
            place = places[verdict]
            if place < last:
                by_name = False
            last = place
            counts[verdict_names[verdict]] = n
            total += n
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

    def _blocking_query(
        self,
        conn: Connection,
        cc: str | None,
        asn: int | None,
        domain: str | None,
        since_ms: int | None,
        until_ms: int | None,
    ) -> Select[Any] | None:
        """The statement behind ``blocking``: (cell, verdict, count) rows sorted by cell id
        then verdict; None when it can only be empty."""
        if since_ms is None and until_ms is None:
            t = rollup_totals.c
            # Already one row per cell and verdict, in primary-key order: no grouping.
            return (
                select(t.cell, t.verdict, t["count"])
                .where(*_in_cells(rollup_totals, cc, asn, domain))
                .order_by(t.cell, t.verdict)
            )
        if domain is not None:
            # One domain's hours are few, and the (cell, verdict, hour_ms, count) index
            # yields them grouped: the hourly table alone is the cheapest here.
            r = rollups.c
            return (
                select(r.cell, r.verdict, cast(func.sum(r.count), BigInteger))
                .where(*rollup_window(cc, asn, domain, since_ms, until_ms))
                .group_by(r.cell, r.verdict)
                # The group-by order in full: SQLite then streams groups out of the covering
                # index; ordering by a prefix alone makes it sort the result once more.
                .order_by(r.cell, r.verdict)
            )
        # The hours the hourly query counted: from the hour holding since_ms, up to and
        # including the hour holding until_ms - 1.
        lo = None if since_ms is None else since_ms - since_ms % HOUR_MS
        hi = None if until_ms is None else -(-until_ms // HOUR_MS) * HOUR_MS
        if lo is not None and hi is not None and lo >= hi:
            return None
        d = daily_rollups.c
        # Two subqueries: SQLite answers a lone min() or max() from the index, but scans the
        # whole table for both in one select.
        first, last = conn.execute(
            select(
                select(func.min(d.day_ms)).scalar_subquery(),
                select(func.max(d.day_ms)).scalar_subquery(),
            )
        ).one()
        if first is None:
            return None
        data = (int(first), int(last) + DAY_MS)
        inside = _buckets(lo, hi)
        outside = [] if lo is None else _buckets(None, lo)
        if hi is not None:
            outside += _buckets(hi, None)
        # Only the buckets that hold data: the lookup above saw the same snapshot.
        within, without = _clip(inside, data), _clip(outside, data)
        if not within:
            return None
        table, start, (first_start, end) = within[0]
        if len(within) == 1 and end - first_start <= _WIDTH[start]:
            # One week, day or hour holding data: its rows are already one per cell and
            # verdict, in primary-key order after the bucket start. No grouping, no sort.
            c = table.c
            return (
                select(c.cell, c.verdict, c["count"])
                .where(c[start] == first_start, *_in_cells(table, cc, asn))
                .order_by(c.cell, c.verdict)
            )
        parts: list[Select[Any]] = []
        sign = 1
        if _TOTALS_COST + _cost(without) < _cost(within):
            parts.append(
                _part(rollup_totals, None, (None, None), 1, _in_cells(rollup_totals, cc, asn))
            )
            within, sign = without, -1
        for table, start, span in within:
            parts.append(_part(table, start, span, sign, _in_cells(table, cc, asn)))
        u = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
        total = func.sum(u.c.n)
        query = (
            select(u.c.cell, u.c.verdict, cast(total, BigInteger))
            .group_by(u.c.cell, u.c.verdict)
            .order_by(u.c.cell, u.c.verdict)
        )
        # Subtracting the outside leaves zeros where a verdict occurred only there; the
        # hourly sum never lists a verdict with no measurement, so neither does this.
        return query.having(total != 0) if sign < 0 else query

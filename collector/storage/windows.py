"""Collector, storage: a time window as rollup buckets, and the statement that reads the
blocking matrix from them.

The blocking matrix reads only the rollups (never ``measurements``): its cost grows with
the number of (bucket, cell, verdict) rows in the window, not with the number of
measurements. It reads the coarsest rollups that answer exactly: ``rollup_totals`` for all
time; for a window its whole weeks from ``weekly_rollups``, the whole days around them from
``daily_rollups`` and the hours around those from ``rollups``, or the totals minus what lies
outside, whichever reads fewer rows. SQLAlchemy Core, the same on SQLite and PostgreSQL;
``collector.storage.blocking`` runs it. docs/design/003-storage.md.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, Table, cast, func, select, union_all
from sqlalchemy.engine import Connection

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


def rollup_window(
    cc: str | None, asn: int | None, domain: str | None, since_ms: int | None, until_ms: int | None
) -> list[ColumnElement[bool]]:
    """The hourly rollups' rows of the filters' cells in the hours overlapping [since_ms,
    until_ms): what the timeline and one domain's matrix read."""
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


def matrix_statement(
    conn: Connection,
    cc: str | None,
    asn: int | None,
    domain: str | None,
    since_ms: int | None,
    until_ms: int | None,
) -> Select[Any] | None:
    """The statement behind the blocking matrix: (cell, verdict, count) rows sorted by
    cell id then verdict; None when it can only be empty."""
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
        parts.append(_part(rollup_totals, None, (None, None), 1, _in_cells(rollup_totals, cc, asn)))
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

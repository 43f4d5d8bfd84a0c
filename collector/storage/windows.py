"""Collector storage: a time window as rollup buckets, and the statement that reads the
blocking matrix from them.

The blocking matrix reads only the rollups (never ``measurements``): its cost grows with
the number of (bucket, cell, verdict) rows in the window, not with the number of
measurements. It reads the coarsest rollups that answer exactly: ``rollup_totals`` for all
time; for a window its whole days from ``weekly_rollups`` (one row per week, cell and
verdict, counted over the days of that week the window takes) and the hours around them
from ``rollups``, or the totals minus what lies outside, whichever reads fewer rows.
SQLAlchemy Core, the same on SQLite and PostgreSQL; ``collector.storage.blocking`` runs it.
docs/design/003-storage.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, Table, cast, func, select, union_all
from sqlalchemy.engine import Connection

from collector.storage.schema import (
    DAY_MS,
    HOUR_MS,
    WEEK_MS,
    WEEKDAYS,
    cells,
    days_count,
    rollup_totals,
    rollups,
    week_start,
    weekday,
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


# A window is answered either directly (its whole days and the hours around them) or as the
# all-time totals minus what lies outside it, whichever reads fewer rows. Costs are in
# buckets of data: in sparse data a week and the totals each hold about one row per cell
# and verdict (14.5k a week, 18.6k in all in the benchmark), however many of the week's
# days are counted, so it is the number of weeks that costs. An hour weighs 1/24 (a day's
# hours hold ~26k rows in the benchmark, under two weeks' worth: a rough weight, and the
# hours at a window's edges rarely decide). The totals count as 3: their rows, then the
# grouping the subtraction needs.
_TOTALS_COST = 3.0

_EVERY_DAY = range(len(WEEKDAYS))


@dataclass(frozen=True)
class _Part:
    """A part of a window: the rows of ``table`` whose bucket start lies in [lo, hi) (None:
    unbounded), each counted over ``days`` of its week (weekly rows) or whole (hourly)."""

    table: Table
    lo: int | None
    hi: int | None
    days: range = _EVERY_DAY

    @property
    def width(self) -> int:
        return WEEK_MS if self.table is weekly_rollups else HOUR_MS

    @property
    def start(self) -> str:
        return "week_ms" if self.table is weekly_rollups else "hour_ms"

    def count(self) -> ColumnElement[Any]:
        if self.table is weekly_rollups:
            return days_count(self.days)
        return self.table.c["count"]

    def buckets(self) -> int:
        """How many buckets a bounded part (as _clip leaves them) reads."""
        assert self.lo is not None, "unbounded below"
        assert self.hi is not None, "unbounded above"
        return -(-(self.hi - self.lo) // self.width)


def _parts(lo: int | None, hi: int | None) -> list[_Part]:
    """The hour-aligned window [lo, hi) as its whole UTC days, read from the weeks holding
    them, and the hours on either side."""
    day_lo = None if lo is None else -(-lo // DAY_MS) * DAY_MS
    day_hi = None if hi is None else hi - hi % DAY_MS
    if day_lo is not None and day_hi is not None and day_lo >= day_hi:
        return [_Part(rollups, lo, hi)]
    out = _weeks(day_lo, day_hi)
    if lo is not None and day_lo is not None and lo < day_lo:
        out.append(_Part(rollups, lo, day_lo))
    if hi is not None and day_hi is not None and day_hi < hi:
        out.append(_Part(rollups, day_hi, hi))
    return out


def _weeks(lo: int | None, hi: int | None) -> list[_Part]:
    """The whole UTC days [lo, hi) as weekly parts: the days of a first and a last week it
    takes only some of, and the whole weeks between."""
    out = []
    first = None if lo is None else week_start(lo)
    end = None if hi is None else week_start(hi - DAY_MS) + WEEK_MS
    if lo is not None and hi is not None and first == week_start(hi - DAY_MS):
        return [_Part(weekly_rollups, first, end, range(weekday(lo), weekday(hi - DAY_MS) + 1))]
    if lo is not None and first is not None and weekday(lo) > 0:
        out.append(_Part(weekly_rollups, first, first + WEEK_MS, range(weekday(lo), 7)))
        first += WEEK_MS
    if hi is not None and end is not None and weekday(hi) > 0:
        end -= WEEK_MS
        out.append(_Part(weekly_rollups, end, end + WEEK_MS, range(weekday(hi))))
    if first is None or end is None or first < end:
        out.append(_Part(weekly_rollups, first, end))
    return out


def _clip(parts: list[_Part], data: tuple[int, int]) -> list[_Part]:
    """The parts narrowed to the buckets that can hold data [first, end) (whole hours),
    bounded on both sides; parts with none are left out."""
    out = []
    for part in parts:
        # The bucket holding the first hour of data: buckets before it are empty.
        floor = week_start(data[0]) if part.table is weekly_rollups else data[0]
        first = floor if part.lo is None else max(part.lo, floor)
        end = data[1] if part.hi is None else min(part.hi, data[1])
        if end > first:
            out.append(replace(part, lo=first, hi=end))
    return out


def _cost(parts: list[_Part]) -> float:
    """How many weeks of rows the clipped parts read; an hour counts as 1/24."""
    return sum(part.buckets() / 24 if part.table is rollups else part.buckets() for part in parts)


def _select(part: _Part, sign: int, where: list[ColumnElement[bool]]) -> Select[Any]:
    """The part's (cell, verdict, n) rows, n times ``sign``."""
    c = part.table.c
    bounds = list(where)
    if part.lo is not None and part.hi is not None and part.buckets() == 1:
        # An equality: rows of one bucket come in (cell, verdict) order from the primary
        # key, where a range leaves the planner to sort them.
        bounds.append(c[part.start] == part.lo)
    else:
        if part.lo is not None:
            bounds.append(c[part.start] >= part.lo)
        if part.hi is not None:
            bounds.append(c[part.start] < part.hi)
    count = part.count()
    if part.days != _EVERY_DAY:
        # A week's row for a cell and verdict seen only on the days not counted.
        bounds.append(count != 0)
    return select(c.cell, c.verdict, (count if sign > 0 else -count).label("n")).where(*bounds)


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
    data = _data_hours(conn)
    if data is None:
        return None
    outside = [] if lo is None else _parts(None, lo)
    if hi is not None:
        outside += _parts(hi, None)
    # Only the buckets that hold data: the lookup above saw the same snapshot.
    return _window_statement(_clip(_parts(lo, hi), data), _clip(outside, data), cc, asn)


def _data_hours(conn: Connection) -> tuple[int, int] | None:
    """The hours that hold data, [first, end), in the rollups; None when there are none."""
    r = rollups.c
    # Two subqueries: SQLite answers a lone min() or max() from the index, but scans the
    # whole table for both in one select.
    first, last = conn.execute(
        select(
            select(func.min(r.hour_ms)).scalar_subquery(),
            select(func.max(r.hour_ms)).scalar_subquery(),
        )
    ).one()
    if first is None:
        return None
    return int(first), int(last) + HOUR_MS


def _window_statement(
    within: list[_Part], without: list[_Part], cc: str | None, asn: int | None
) -> Select[Any] | None:
    """The matrix of a window from its clipped parts: those inside it summed, or the totals
    less those outside it, whichever reads fewer rows."""
    if not within:
        return None
    if len(within) == 1 and within[0].buckets() == 1:
        # One week or hour holding data: its rows are already one per cell and verdict, in
        # primary-key order after the bucket start. No grouping, no sort.
        (part,) = within
        c = part.table.c
        return _select(part, 1, _in_cells(part.table, cc, asn)).order_by(c.cell, c.verdict)
    selects: list[Select[Any]] = []
    sign = 1
    if _TOTALS_COST + _cost(without) < _cost(within):
        t = rollup_totals.c
        selects.append(
            select(t.cell, t.verdict, t["count"].label("n")).where(
                *_in_cells(rollup_totals, cc, asn)
            )
        )
        within, sign = without, -1
    for part in within:
        selects.append(_select(part, sign, _in_cells(part.table, cc, asn)))
    u = union_all(*selects).subquery() if len(selects) > 1 else selects[0].subquery()
    total = func.sum(u.c.n)
    query = (
        select(u.c.cell, u.c.verdict, cast(total, BigInteger))
        .group_by(u.c.cell, u.c.verdict)
        .order_by(u.c.cell, u.c.verdict)
    )
    # Subtracting the outside leaves zeros where a verdict occurred only there; the
    # hourly sum never lists a verdict with no measurement, so neither does this.
    return query.having(total != 0) if sign < 0 else query

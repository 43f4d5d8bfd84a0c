"""Checks shared by the storage tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, select

from collector.storage import Storage
from collector.storage.schema import (
    DAY_MS,
    WEEKDAYS,
    cells,
    measurements,
    verdicts,
    weekly_rollups,
)


def counts_from_rows(store: Storage) -> dict[tuple[str, int, str, str], int]:
    """What the rollups must say, counted straight from the measurements table."""
    m = measurements.c
    dims = (m.domain, func.coalesce(m.asn, 0), func.coalesce(m.cc, ""), m.verdict)
    with store.engine.connect() as conn:
        rows = conn.execute(select(*dims, func.count()).group_by(*dims))
        return {(d, a, c, v): n for d, a, c, v, n in rows}


def stored_verdicts(store: Storage) -> dict[bytes, str]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(measurements.c.id, measurements.c.verdict))
        return {bytes(row[0]): str(row[1]) for row in rows}


def daily_counts_from_rows(store: Storage) -> dict[tuple[int, str, int, str, str], int]:
    """What ``weekly_rollups`` must say, day by day (as ``table_counts`` reads it), counted
    straight from the measurements table."""
    m = measurements.c
    day = (m.measured_ms // DAY_MS) * DAY_MS
    dims = (day, m.domain, func.coalesce(m.asn, 0), func.coalesce(m.cc, ""), m.verdict)
    with store.engine.connect() as conn:
        rows = conn.execute(select(*dims, func.count()).group_by(*dims))
        return {(int(t), d, a, c, v): n for t, d, a, c, v, n in rows}


def table_counts(store: Storage, table: Table) -> dict[tuple[Any, ...], int]:
    """A rollup table as {dimensions: count}, its cell and verdict ids named: ([bucket,]
    domain, asn, cc, verdict). ``weekly_rollups`` is read day by day, (day_ms, domain, asn,
    cc, verdict), its days with no count left out."""
    t, c, v = table.c, cells.c, verdicts.c
    weekly = table is weekly_rollups
    counts = [t[day] for day in WEEKDAYS] if weekly else [t["count"]]
    bucket = [column for column in t if column.name not in ("cell", "verdict", "count", *WEEKDAYS)]
    query = select(*bucket, c.domain, c.asn, c.cc, v.name, *counts).select_from(
        table.join(cells, c.id == t.cell).join(verdicts, v.id == t.verdict)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
        (unnamed,) = conn.execute(
            select(func.count())
            .select_from(table)
            .where(t.cell.not_in(select(c.id)) | t.verdict.not_in(select(v.id)))
        ).one()
    assert unnamed == 0, f"{table.name}: rows whose cell or verdict has no name"
    if not weekly:
        return {tuple(row[:-1]): int(row[-1]) for row in rows}
    out: dict[tuple[Any, ...], int] = {}
    for row in rows:
        week, names, days = int(row[0]), tuple(row[1:5]), [int(n) for n in row[5:]]
        assert any(days), f"weekly_rollups: a row with no count on any day: {row}"
        for i, n in enumerate(days):
            if n:
                out[(week + i * DAY_MS, *names)] = n
    return out

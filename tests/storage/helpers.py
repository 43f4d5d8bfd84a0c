"""Checks shared by the storage tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, select

from collector.storage import Storage
from collector.storage.schema import DAY_MS, cells, measurements, verdicts


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
    """What ``daily_rollups`` must say, counted straight from the measurements table."""
    m = measurements.c
    day = (m.measured_ms // DAY_MS) * DAY_MS
    dims = (day, m.domain, func.coalesce(m.asn, 0), func.coalesce(m.cc, ""), m.verdict)
    with store.engine.connect() as conn:
        rows = conn.execute(select(*dims, func.count()).group_by(*dims))
        return {(int(t), d, a, c, v): n for t, d, a, c, v, n in rows}


def table_counts(store: Storage, table: Table) -> dict[tuple[Any, ...], int]:
    """A rollup table as {dimensions: count}, its cell and verdict ids named: ([bucket,]
    domain, asn, cc, verdict)."""
    t, c, v = table.c, cells.c, verdicts.c
    bucket = [column for column in t if column.name not in ("cell", "verdict", "count")]
    query = select(*bucket, c.domain, c.asn, c.cc, v.name, t["count"]).select_from(
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
    return {tuple(row[:-1]): int(row[-1]) for row in rows}

"""The rollup migrations on SQLite and PostgreSQL: the 0004/0006/0009 backfills from
stored measurements, and 0007, 0008 and 0009 down and up again, keep every count."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import MetaData as sa_metadata
from sqlalchemy import Table, func, select

from collector.storage import Storage
from collector.storage.engine import make_engine, upgrade
from collector.storage.schema import (
    DAY_MS,
    agents,
    measurements,
    rollup_totals,
    verdicts,
    week_start,
    weekly_rollups,
)
from collector.storage.schema import cells as cells_table
from tests.collector.storage.helpers import counts_from_rows, daily_counts_from_rows, table_counts
from tests.collector.storage.records import AGENT, batch
from tests.collector.storage.rollup_data import (
    MONDAY,
    NETWORKS,
    ROLLUP_TABLES,
    START,
    VERDICTS,
    assert_rollups_recount,
    fill,
    hourly_blocking,
    migrated,
    spread,
)


def test_migrations_0004_0006_and_0009_backfill_from_existing_measurements(
    storage_url: str,
) -> None:
    engine = make_engine(storage_url)
    with migrated(engine, command.upgrade, "0003"):
        pass
    records = spread(300, seed=5)
    rows = [
        {
            "id": r.key, "measured_ms": r.measured_ms, "received_ms": 0, "agent_id": AGENT,
            "asn": asn, "cc": cc, "domain": r.domain, "url": r.url, "verdict": r.verdict,
            "record": r.record,
        }
        for i, r in enumerate(records)
        for asn, cc in [NETWORKS[i % len(NETWORKS)]]
    ]  # fmt: skip
    # Stored as a 0003 collector would have: measurements, and no daily or total rollups.
    with engine.begin() as conn:
        conn.execute(
            agents.insert(), {"id": AGENT, "name": "a", "public_key": b"", "created_ms": 0}
        )
        conn.execute(measurements.insert(), rows)
    upgrade(engine)
    store = Storage(engine)
    try:
        # 0004 filled the daily table, 0006 a weekly one from it, 0009 the days of each week.
        assert sum(table_counts(store, weekly_rollups).values()) == 300
        assert table_counts(store, weekly_rollups) == daily_counts_from_rows(store)
        assert table_counts(store, rollup_totals) == counts_from_rows(store)
        # Ingest goes on from the backfilled rows.
        fill(store, 80, seed=6)
        # (Not the hourly table: the rows written behind ingest's back have no hourly rows.)
        assert table_counts(store, weekly_rollups) == daily_counts_from_rows(store)
        assert table_counts(store, rollup_totals) == counts_from_rows(store)
    finally:
        store.close()


def test_migration_0007_keys_rollups_by_cell_and_back(storage: Storage, storage_url: str) -> None:
    fill(storage, 400, seed=9)
    tables = ROLLUP_TABLES
    before = {table.name: table_counts(storage, table) for table in tables}
    with storage.engine.connect() as conn:
        (cells_before,) = conn.execute(select(func.count()).select_from(cells_table)).one()
    with migrated(storage.engine, command.downgrade, "0006") as conn:
        # 0006's tables: the names are back in every rollup row.
        old = Table("rollup_totals", sa_metadata(), autoload_with=conn)
        assert {column.name for column in old.c} == {"domain", "asn", "cc", "verdict", "count"}
        assert int(conn.execute(select(func.sum(old.c["count"]))).scalar_one()) == 400
    upgrade(storage.engine)  # 0007 again, from those rows
    store = Storage(make_engine(storage_url))  # a new process: no cell ids in memory
    try:
        assert {table.name: table_counts(store, table) for table in tables} == before
        with store.engine.connect() as conn:
            (cells_after,) = conn.execute(select(func.count()).select_from(cells_table)).one()
        assert cells_after == cells_before
        # Ingest and the matrix go on from the migrated rows.
        fill(store, 50, seed=10)
        assert_rollups_recount(store)
        assert store.blocking() == hourly_blocking(store)
    finally:
        store.close()


def test_migration_0008_keys_rollups_by_verdict_id_and_back(
    storage: Storage, storage_url: str
) -> None:
    fill(storage, 400, seed=11)
    tables = ROLLUP_TABLES
    before = {table.name: table_counts(storage, table) for table in tables}
    with migrated(storage.engine, command.downgrade, "0007") as conn:
        # 0007's tables: the verdict names are back in every rollup row.
        old = Table("rollup_totals", sa_metadata(), autoload_with=conn)
        names = {str(name) for (name,) in conn.execute(select(old.c.verdict).distinct())}
        assert names == set(VERDICTS)
        assert int(conn.execute(select(func.sum(old.c["count"]))).scalar_one()) == 400
    upgrade(storage.engine)  # 0008 again, from those rows
    store = Storage(make_engine(storage_url))  # a new process: no ids in memory
    try:
        assert {table.name: table_counts(store, table) for table in tables} == before
        with store.engine.connect() as conn:
            named = conn.execute(select(verdicts.c.name).order_by(verdicts.c.id)).scalars().all()
        # Numbered in name order, one id per verdict counted.
        assert named == sorted(set(VERDICTS))
        # Ingest, a verdict never seen before included, and the matrix go on from them.
        fill(store, 50, seed=12)
        new = [record._replace(verdict="http.blockpage") for record in batch(3)]
        store.ingest(AGENT, new, 64500, "PK", START)
        assert_rollups_recount(store)
        assert store.blocking() == hourly_blocking(store)
    finally:
        store.close()


def test_migration_0009_counts_days_in_weekly_rows_and_back(
    storage: Storage, storage_url: str
) -> None:
    fill(storage, 400, seed=13)
    before = {table.name: table_counts(storage, table) for table in ROLLUP_TABLES}
    daily = daily_counts_from_rows(storage)
    weekly: dict[tuple[Any, ...], int] = {}
    for (day, *names), n in daily.items():
        key = (week_start(day), *names)
        weekly[key] = weekly.get(key, 0) + n
    c, v = cells_table.c, verdicts.c
    with migrated(storage.engine, command.downgrade, "0008") as conn:
        # 0008's tables: a row per day and verdict, and one per week, each with one count.
        for name, expected in (("daily_rollups", daily), ("weekly_rollups", weekly)):
            old = Table(name, sa_metadata(), autoload_with=conn)
            start = next(column for column in old.c if column.name.endswith("_ms"))
            rows = conn.execute(
                select(start, c.domain, c.asn, c.cc, v.name, old.c["count"]).select_from(
                    old.join(cells_table, c.id == old.c.cell).join(verdicts, v.id == old.c.verdict)
                )
            ).all()
            assert {tuple(row[:-1]): int(row[-1]) for row in rows} == expected, name
    upgrade(storage.engine)  # 0009 again, from those rows
    store = Storage(make_engine(storage_url))
    try:
        assert {table.name: table_counts(store, table) for table in ROLLUP_TABLES} == before
        fill(store, 50, seed=14)
        assert_rollups_recount(store)
        assert store.blocking() == hourly_blocking(store)
        since = MONDAY + 2 * DAY_MS
        assert store.blocking(since_ms=since) == hourly_blocking(store, since_ms=since)
    finally:
        store.close()

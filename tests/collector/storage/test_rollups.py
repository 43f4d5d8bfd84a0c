"""The coarser rollups (``weekly_rollups``, a count per day of each week, and
``rollup_totals``) on SQLite and PostgreSQL: they equal a recount of the measurements after
ingest, duplicates, reclassification and the 0004/0006/0009 backfills, and the blocking
matrix read from them equals the sum of the hourly rows for every kind of window."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData as sa_metadata
from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection, Engine

from agent.model.measurement import SiteMeasurement, new_measurement_id
from collector.storage import IngestRecord, Storage, blocking
from collector.storage.blocking import BlockingRow, dominant
from collector.storage.engine import MIGRATIONS, make_engine, upgrade
from collector.storage.schema import (
    DAY_MS,
    HOUR_MS,
    WEEK_MS,
    agents,
    measurements,
    rollup_totals,
    rollups,
    verdicts,
    week_start,
    weekly_rollups,
)
from collector.storage.schema import cells as cells_table
from tests.collector.storage.helpers import counts_from_rows, daily_counts_from_rows, table_counts
from tests.collector.storage.records import AGENT, batch

START = 1_700_006_400_000 - 1_700_006_400_000 % DAY_MS  # a UTC midnight (a Wednesday)
# Over two weeks, so windows take whole ISO weeks, partial ones and the days around them.
DAYS = 16
MONDAY = week_start(START) + WEEK_MS  # the first week boundary inside the data
NETWORKS = [(64500, "PK"), (64501, "IR"), (64502, "PK"), (None, None)]
DOMAINS = [f"site{i}.example" for i in range(7)]
VERDICTS = ["ok", "ok", "down", "dns.injected", "tls.reset"]


def spread(n: int, seed: int) -> list[IngestRecord]:
    """``n`` records at random times over DAYS days, domains and verdicts drawn from a few."""
    rng = random.Random(seed)
    template = batch(1)[0]
    out = []
    for _ in range(n):
        at = START + rng.randrange(DAYS * DAY_MS)
        domain = rng.choice(DOMAINS)
        out.append(
            IngestRecord.make(
                id=new_measurement_id(at),
                measured_ms=at,
                domain=domain,
                url=f"https://{domain}/",
                verdict=rng.choice(VERDICTS),
                record=template.record,
            )
        )
    return out


def fill(store: Storage, n: int = 600, seed: int = 1) -> None:
    records = spread(n, seed)
    for i, (asn, cc) in enumerate(NETWORKS):
        store.ingest(AGENT, records[i :: len(NETWORKS)], asn, cc, 0)


ROLLUP_TABLES: list[Table] = [rollups, weekly_rollups, rollup_totals]


@contextmanager
def migrated(
    engine: Engine, move: Callable[[Config, str], None], revision: str
) -> Iterator[Connection]:
    """Runs alembic's ``move`` (upgrade or downgrade) to ``revision`` in a transaction,
    which stays open for the caller to look at the tables so left."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        move(config, revision)
        yield conn


def assert_rollups_recount(store: Storage) -> None:
    assert table_counts(store, weekly_rollups) == daily_counts_from_rows(store)
    assert table_counts(store, rollup_totals) == counts_from_rows(store)
    assert store.rollup_counts() == counts_from_rows(store)


def hourly_blocking(
    store: Storage,
    cc: str | None = None,
    asn: int | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[BlockingRow]:
    """The matrix as the hourly-only implementation computed it: the reference, sorted by
    the cells' names."""
    r, c = rollups.c, cells_table.c
    where = []
    if asn is not None:
        where.append(c.asn == asn)
    if cc is not None:
        where.append(c.cc == cc)
    if since_ms is not None:
        where.append(r.hour_ms >= since_ms - since_ms % HOUR_MS)
    if until_ms is not None:
        where.append(r.hour_ms < until_ms)
    v = verdicts.c
    dims = (c.domain, c.asn, c.cc, v.name)
    query = (
        select(*dims, func.sum(r.count))
        .select_from(rollups.join(cells_table, c.id == r.cell).join(verdicts, v.id == r.verdict))
        .where(*where)
        .group_by(*dims)
        .order_by(v.name)
    )
    cells: dict[tuple[str, int, str], dict[str, int]] = {}
    with store.engine.connect() as conn:
        for d, a, c, v, n in conn.execute(query):
            cells.setdefault((d, int(a), c), {})[v] = int(n)
    return [
        BlockingRow(d, a, c, counts, sum(counts.values()), dominant(counts))
        for (d, a, c), counts in sorted(cells.items())
    ]


def test_ingest_keeps_weekly_and_total_rollups_equal_to_a_recount(storage: Storage) -> None:
    fill(storage)
    assert_rollups_recount(storage)
    days = {key[0] for key in table_counts(storage, weekly_rollups)}
    assert days == {START + i * DAY_MS for i in range(DAYS)}
    with storage.engine.connect() as conn:
        weeks = set(conn.execute(select(weekly_rollups.c.week_ms).distinct()).scalars())
    assert weeks == {MONDAY - WEEK_MS, MONDAY, MONDAY + WEEK_MS}
    # Unknown networks are counted as ASN 0 and country "" here too.
    assert any(key[1:3] == (0, "") for key in table_counts(storage, rollup_totals))


def test_duplicates_add_nothing_to_weekly_and_total_rollups(storage: Storage) -> None:
    records = spread(120, seed=2)
    storage.ingest(AGENT, records[:50], 64500, "PK", 0)
    daily, totals = table_counts(storage, weekly_rollups), table_counts(storage, rollup_totals)
    # All duplicates, from another network: nothing moves.
    assert storage.ingest(AGENT, records[:50], 64501, "IR", 0).stored == []
    assert table_counts(storage, weekly_rollups) == daily
    assert table_counts(storage, rollup_totals) == totals
    # Half old, half new, one id twice within the batch: only the new ones count, once.
    result = storage.ingest(AGENT, [*records[25:], records[60]], 64500, "PK", 0)
    assert len(result.stored) == 70
    assert sum(table_counts(storage, rollup_totals).values()) == 120
    assert sum(table_counts(storage, weekly_rollups).values()) == 120
    assert_rollups_recount(storage)


def test_reclassify_rebuilds_weekly_and_total_rollups(storage: Storage) -> None:
    fill(storage, 200, seed=3)

    def everything_blocked(_m: SiteMeasurement) -> str:
        return "blocked"

    assert storage.reclassify(everything_blocked).changed == 200
    assert_rollups_recount(storage)
    assert {key[-1] for key in table_counts(storage, rollup_totals)} == {"blocked"}
    assert {key[-1] for key in table_counts(storage, weekly_rollups)} == {"blocked"}
    # Ingest after the rebuild adds to the rebuilt rows.
    fill(storage, 40, seed=4)
    assert_rollups_recount(storage)


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


def windows() -> list[tuple[int | None, int | None]]:
    """Windows of every shape over the data: unbounded, empty, within an hour, across
    midnights and week boundaries, whole weeks with edge days and hours, and random ones."""
    end = START + DAYS * DAY_MS
    bounds = [
        None,
        START - DAY_MS,  # before all data
        START,
        START + 1,
        START + HOUR_MS,
        START + DAY_MS,  # a midnight
        START + DAY_MS + 5 * HOUR_MS + 17,
        START + 3 * DAY_MS - 1,
        START + 3 * DAY_MS,
        MONDAY - HOUR_MS,
        MONDAY,  # a week boundary
        MONDAY + 2 * HOUR_MS,
        MONDAY + WEEK_MS,  # the next one: [MONDAY, this) is one whole week
        MONDAY + WEEK_MS + DAY_MS + 3 * HOUR_MS + 1,
        end - DAY_MS + 23 * HOUR_MS,
        end - 1,
        end,
        end + 7 * DAY_MS,  # after all data
    ]
    out = [
        (since, until)
        for since in bounds
        for until in bounds
        if since is None or until is None or since <= until
    ]
    # Seven days from each day of a week, and two days from each: the days of one or two
    # weeks, with or without the hours around them.
    for day in range(7):
        for hours in (0, 5):
            since = START + day * DAY_MS + hours * HOUR_MS
            out += [(since, since + 7 * DAY_MS), (since, since + 2 * DAY_MS)]
    rng = random.Random(8)
    for _ in range(40):
        start = START + rng.randrange(-DAY_MS, (DAYS + 1) * DAY_MS)
        out.append((start, start + rng.randrange(3 * DAY_MS)))
        # Week-long and longer: whole weeks plus edge days and hours.
        out.append((start, start + rng.randrange(6 * DAY_MS, 12 * DAY_MS)))
    return out


@pytest.mark.parametrize(
    ("cc", "asn"), [(None, None), ("PK", None), (None, 64501), ("", 0), ("RU", None)]
)
def test_blocking_over_any_window_equals_the_hourly_sum(
    storage: Storage, cc: str | None, asn: int | None
) -> None:
    fill(storage, 900, seed=7)
    nonempty = 0
    for since, until in windows():
        expected = hourly_blocking(storage, cc, asn, since, until)
        got = storage.blocking(cc=cc, asn=asn, since_ms=since, until_ms=until)
        assert got == expected, (since, until)
        # The order matters too: the JSON lists counts in this order.
        assert [list(row.counts) for row in got] == [list(row.counts) for row in expected]
        nonempty += bool(expected)
    if cc != "RU":  # no such network: every window is empty
        assert nonempty > len(windows()) // 2


def test_blocking_in_pipelined_slices_of_cells_equals_the_hourly_sum(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL reads a large unfiltered matrix in slices of cell ids, each sent before
    the rows of the one before are built; with slices of 2 cells the 28 cells here take 4."""
    monkeypatch.setattr(blocking, "_SLICE_CELLS", 2)
    slices_used: list[int] = []
    fetched = blocking._fetched

    def counting(*args: Any) -> Any:
        slices_used.append(len(args[-1]))
        return fetched(*args)

    monkeypatch.setattr(blocking, "_fetched", counting)
    fill(storage, 900, seed=7)
    assert storage.blocking() == hourly_blocking(storage)  # the id map now knows every cell
    slices_used.clear()
    for since, until in windows():
        expected = hourly_blocking(storage, since_ms=since, until_ms=until)
        got = storage.blocking(since_ms=since, until_ms=until)
        assert got == expected, (since, until)
        assert [list(row.counts) for row in got] == [list(row.counts) for row in expected]
    postgres = storage.engine.dialect.name == "postgresql"
    # Every statement that ran was sliced on PostgreSQL, and none on SQLite.
    assert slices_used
    assert set(slices_used) == ({4} if postgres else {1})


def test_a_slice_that_fails_leaves_the_store_usable(
    pg_storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slice's statement failing in the pipeline, or the row loop failing while the next
    slice is queued: the error reaches the caller, and the connection goes back to the
    pool fit for the next call."""
    storage = pg_storage
    monkeypatch.setattr(blocking, "_SLICE_CELLS", 2)
    fill(storage, 300, seed=3)
    expected = storage.blocking()  # the id map now knows every cell
    sent = blocking._sent
    calls: list[tuple[int, int]] = []

    def failing_third(driver: Any, sql: str, params: Any, cells: tuple[int, int]) -> Any:
        calls.append(cells)
        return sent(driver, "SELECT 1/0" if len(calls) == 3 else sql, params, cells)

    monkeypatch.setattr(blocking, "_sent", failing_third)
    with pytest.raises(psycopg.errors.DivisionByZero):
        storage.blocking(since_ms=START)
    monkeypatch.setattr(blocking, "_sent", sent)
    assert storage.blocking() == expected

    def broken(counts: dict[str, int]) -> str | None:
        raise RuntimeError("the loop failed")

    monkeypatch.setattr(blocking, "dominant", broken)  # called in the first slice's loop
    with pytest.raises(RuntimeError, match="the loop failed"):
        storage.blocking(since_ms=START)
    monkeypatch.setattr(blocking, "dominant", dominant)
    assert storage.blocking() == expected
    assert storage.blocking(since_ms=START) == hourly_blocking(storage, since_ms=START)


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

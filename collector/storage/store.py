"""Collector, storage: the one interface to the measurement store, on SQLite or PostgreSQL.

``Storage`` hides the backend: both take the same Core statements, only the dialect's
``INSERT ... ON CONFLICT`` construct differs. Its methods block, so the aiohttp app
calls the ``*_async`` wrappers, which run them on a worker thread.

Ingest is one transaction: insert the measurements that are new (``ON CONFLICT DO
NOTHING ... RETURNING id`` says which ones *this* transaction inserted, even with other
collectors inserting the same ids at once), then add exactly those to the hourly
rollups. docs/design/003-storage.md has the argument. The batch's connectivity checks go in
the same transaction, keyed by (agent, time), so a repeated upload adds none of them twice.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar, cast

import psycopg
from sqlalchemy import Table, bindparam, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from agent.measurement import SiteMeasurement
from agent.wire import WireError, decode_measurement
from collector.storage.agents import AgentStore
from collector.storage.engine import READ_ONLY, make_engine, sqlstate, upgrade
from collector.storage.queries import QueryStore
from collector.storage.records import IngestRecord, IngestResult, ReclassifyResult, RejectedBatch
from collector.storage.schema import (
    DAY_MS,
    HOUR_MS,
    UNKNOWN_ASN,
    UNKNOWN_CC,
    WEEK_MS,
    WEEK_OFFSET_MS,
    agents,
    connectivity,
    daily_rollups,
    measurements,
    rollup_totals,
    rollups,
    week_start,
    weekly_rollups,
)

log = logging.getLogger("netsonde.collector.storage")

RollupKey = tuple[str, int, str, str]  # domain, asn, cc, verdict
# PostgreSQL deadlock and serialization failures: the transaction was rolled back whole,
# so running it again is safe.
_RETRYABLE = frozenset({"40P01", "40001"})
_ATTEMPTS = 5
RECLASSIFY_CHUNK = 1000
_T = TypeVar("_T")
# PostgreSQL gets the batch as one array per column, in psycopg's binary format: one short
# statement whatever the batch size, where a multi-row VALUES list (and bytea escaped as
# text) costs the driver more than the server.
_PG_NEW_MEASUREMENTS = """
    INSERT INTO measurements
        (id, measured_ms, received_ms, agent_id, asn, cc, domain, url, verdict, record)
    SELECT id, measured_ms, %(received_ms)s::bigint, %(agent_id)s::text,
           %(asn)s::bigint, %(cc)s::text, domain, url, verdict, record
    FROM unnest(%(id)s::bytea[], %(measured_ms)s::bigint[], %(domain)s::text[],
                %(url)s::text[], %(verdict)s::text[], %(record)s::bytea[])
         AS batch (id, measured_ms, domain, url, verdict, record)
    ORDER BY id
    ON CONFLICT DO NOTHING
    RETURNING id
"""
# SQLite gets one multi-row INSERT through the driver as well: building SQLAlchemy's bound
# parameters, row by row, cost more than SQLite's own insert. 500 rows of 10 columns stay
# well under SQLite's 32,766 variables.
_SQLITE_COLUMNS = (
    "id", "measured_ms", "received_ms", "agent_id", "asn", "cc", "domain", "url", "verdict",
    "record",
)  # fmt: skip
_SQLITE_CHUNK = 500
_SQLITE_ROW = "(" + ", ".join("?" * len(_SQLITE_COLUMNS)) + ")"


def _sqlite_new_measurements(
    conn: Connection,
    records: Sequence[IngestRecord],
    agent_id: str,
    asn: int | None,
    cc: str | None,
    received_ms: int,
) -> set[bytes]:
    """Inserts the records whose id is new; the ids this transaction inserted.

    Without RETURNING, which cost a fifth of the insert: the row count says whether all
    went in, as they nearly always do. When some were there already, the new ones are
    those above the table's largest rowid from before: measurements are never deleted, so
    SQLite gives new rows larger rowids, and the write lock (BEGIN IMMEDIATE) keeps other
    writers out meanwhile.
    """
    driver = cast("sqlite3.Connection", conn.connection.driver_connection)
    (before,) = driver.execute("SELECT coalesce(max(rowid), 0) FROM measurements").fetchone()
    count = 0
    for start in range(0, len(records), _SQLITE_CHUNK):
        chunk = records[start : start + _SQLITE_CHUNK]
        statement = (
            f"INSERT INTO measurements ({', '.join(_SQLITE_COLUMNS)}) VALUES "
            f"{', '.join([_SQLITE_ROW] * len(chunk))} ON CONFLICT DO NOTHING"
        )
        values: list[Any] = []
        extend = values.extend
        for r in chunk:
            extend((r.key, r.measured_ms, received_ms, agent_id, asn, cc, r.domain, r.url,
                    r.verdict, r.record))  # fmt: skip
        count += driver.execute(statement, values).rowcount
    if count == len(records):
        return {r.key for r in records}
    new = driver.execute("SELECT id FROM measurements WHERE rowid > ?", (before,))
    return {row[0] for row in new}


def _pg_new_measurements(
    conn: Connection,
    records: Sequence[IngestRecord],
    agent_id: str,
    asn: int | None,
    cc: str | None,
    received_ms: int,
) -> set[bytes]:
    """Inserts the records whose id is new; the ids this statement inserted."""
    params: dict[str, Any] = {
        "id": [r.key for r in records],
        "measured_ms": [r.measured_ms for r in records],
        "domain": [r.domain for r in records],
        "url": [r.url for r in records],
        "verdict": [r.verdict for r in records],
        "record": [r.record for r in records],
        "received_ms": received_ms,
        "agent_id": agent_id,
        "asn": asn,
        "cc": cc,
    }
    driver = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
    with driver.cursor() as cursor:
        # The driver's own cursor, inside the same transaction: SQLAlchemy has no way to
        # ask psycopg for binary parameters.
        cursor.execute(_PG_NEW_MEASUREMENTS, params, binary=True)
        return {bytes(row[0]) for row in cursor.fetchall()}


# The four rollup upserts of a batch as one statement, arrays in binary as above: separate
# SQLAlchemy statements cost PostgreSQL ingest a tenth of its throughput. A batch has one
# network, so asn and cc are scalars. Rows go in array order (Python's sorted keys), and
# every ingest runs this same statement, so all take rollup row locks in one order.
_PG_TIMED_ROLLUP = """
    {cte} AS (
        INSERT INTO {table} AS r ({start}, domain, asn, cc, verdict, count)
        SELECT start, domain, %(asn)s::bigint, %(cc)s::text, verdict, n
        FROM unnest(%({p}_start)s::bigint[], %({p}_domain)s::text[], %({p}_verdict)s::text[],
                    %({p}_n)s::bigint[]) WITH ORDINALITY AS b (start, domain, verdict, n, i)
        ORDER BY i
        ON CONFLICT ({start}, domain, asn, cc, verdict)
            DO UPDATE SET count = r.count + excluded.count
    )"""
_PG_ADD_ROLLUPS = (
    "WITH"
    + ",".join(
        _PG_TIMED_ROLLUP.format(cte=cte, table=table, start=start, p=prefix)
        for cte, table, start, prefix in (
            ("hourly", "rollups", "hour_ms", "h"),
            ("daily", "daily_rollups", "day_ms", "d"),
            ("weekly", "weekly_rollups", "week_ms", "w"),
        )
    )
    + """
    INSERT INTO rollup_totals AS r (domain, asn, cc, verdict, count)
    SELECT domain, %(asn)s::bigint, %(cc)s::text, verdict, n
    FROM unnest(%(t_domain)s::text[], %(t_verdict)s::text[], %(t_n)s::bigint[])
         WITH ORDINALITY AS b (domain, verdict, n, i)
    ORDER BY i
    ON CONFLICT (domain, asn, cc, verdict)
        DO UPDATE SET count = r.count + excluded.count
"""
)
_ROLLUP_DIMS = ("hour_ms", "domain", "asn", "cc", "verdict")
_DAILY_DIMS = ("day_ms", "domain", "asn", "cc", "verdict")
_WEEKLY_DIMS = ("week_ms", "domain", "asn", "cc", "verdict")
_TOTAL_DIMS = ("domain", "asn", "cc", "verdict")


def _sqlite_counting_upsert(table: Table, dims: tuple[str, ...]) -> str:
    columns = ", ".join(dims)
    return (
        f"INSERT INTO {table.name} ({columns}, count) VALUES ({', '.join('?' * (len(dims) + 1))})"
        f" ON CONFLICT ({columns}) DO UPDATE SET count = count + excluded.count"
    )


# Hourly, daily, weekly, all-time: every ingest upserts the four in this order (and each by
# sorted key), so concurrent ingests lock rollup rows in one global order. PostgreSQL does
# the same in one statement (_PG_ADD_ROLLUPS).
_SQLITE_ADD_ROLLUPS = tuple(
    _sqlite_counting_upsert(table, dims)
    for table, dims in (
        (rollups, _ROLLUP_DIMS),
        (daily_rollups, _DAILY_DIMS),
        (weekly_rollups, _WEEKLY_DIMS),
        (rollup_totals, _TOTAL_DIMS),
    )
)


class Storage(AgentStore, QueryStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.backend = engine.dialect.name
        self._insert: Callable[[Table], Any] = (
            postgresql.insert if self.backend == "postgresql" else sqlite.insert
        )
        # SQLite has one writer at a time. Ingest threads queue for it here, and the next
        # one starts the moment a write ends, where SQLite's busy handler would have them
        # poll its lock, sleeping up to 100 ms between tries: at 4 concurrent uploads,
        # throughput fell by a third. PostgreSQL writes concurrently.
        self._writer: AbstractContextManager[Any] = (
            nullcontext() if self.backend == "postgresql" else threading.Lock()
        )

    def close(self) -> None:
        self.engine.dispose()

    def add_agent(self, agent_id: str, name: str, public_key: bytes, created_ms: int) -> bool:
        """Registers an agent; False if the id was registered already (then nothing changes)."""
        row = {"id": agent_id, "name": name, "public_key": public_key, "created_ms": created_ms}
        with self.engine.begin() as conn:
            inserted = conn.execute(
                self._insert(agents).on_conflict_do_nothing().returning(agents.c.id), row
            )
            return inserted.first() is not None

    def ingest(
        self,
        agent_id: str,
        records: Sequence[IngestRecord],
        asn: int | None,
        cc: str | None,
        received_ms: int,
        checks: Sequence[tuple[int, bool]] = (),
    ) -> IngestResult:
        """Stores the new records of one batch, and its connectivity checks (ms, online), all
        or nothing (:class:`RejectedBatch`)."""
        unique: dict[bytes, IngestRecord] = {}
        repeated: list[str] = []
        for record in records:
            if record.key in unique:
                repeated.append(record.id)
            else:
                unique[record.key] = record
        # Rows go in sorted by id and rollups by key: concurrent ingests that overlap then
        # take their row locks in the same order and cannot deadlock each other.
        ordered = sorted(unique.values())
        dims = (UNKNOWN_ASN if asn is None else asn, UNKNOWN_CC if cc is None else cc)

        def write(conn: Connection) -> set[bytes]:
            if not ordered:
                inserted: set[bytes] = set()
            elif self.backend == "postgresql":
                inserted = _pg_new_measurements(conn, ordered, agent_id, asn, cc, received_ms)
            else:
                inserted = _sqlite_new_measurements(conn, ordered, agent_id, asn, cc, received_ms)
            new = ordered if len(inserted) == len(ordered) else [
                r for r in ordered if r.key in inserted
            ]  # fmt: skip
            if new:
                asn_key, cc_key = dims
                self._count_rollups(
                    conn,
                    Counter(
                        (r.measured_ms - r.measured_ms % HOUR_MS, r.domain, asn_key, cc_key,
                         r.verdict)
                        for r in new
                    ),
                )  # fmt: skip
            self._store_checks(conn, agent_id, checks, asn, cc, received_ms)
            return inserted

        inserted = self._write(write)
        stored = [r.id for r in unique.values() if r.key in inserted]
        duplicates = [r.id for r in unique.values() if r.key not in inserted] + repeated
        return IngestResult(stored=stored, duplicates=duplicates, checks=len(dict(checks)))

    async def ingest_async(
        self,
        agent_id: str,
        records: Sequence[IngestRecord],
        asn: int | None,
        cc: str | None,
        received_ms: int,
        checks: Sequence[tuple[int, bool]] = (),
    ) -> IngestResult:
        return await asyncio.to_thread(self.ingest, agent_id, records, asn, cc, received_ms, checks)

    def _store_checks(
        self,
        conn: Connection,
        agent_id: str,
        checks: Sequence[tuple[int, bool]],
        asn: int | None,
        cc: str | None,
        received_ms: int,
    ) -> None:
        """Inserts the checks not stored yet; a check already there (a repeated upload)
        keeps its first row, network and received time included."""
        if not checks:
            return
        # Sorted, like the measurements: overlapping ingests lock rows in the same order.
        rows = [
            {"agent_id": agent_id, "ms": ms, "online": online, "asn": asn, "cc": cc,
             "received_ms": received_ms}
            for ms, online in sorted(dict(checks).items())
        ]  # fmt: skip
        conn.execute(self._insert(connectivity).on_conflict_do_nothing(), rows)

    def _write(self, body: Callable[[Connection], _T]) -> _T:
        """Runs ``body`` in a write transaction, again when PostgreSQL aborted it for a
        deadlock: the whole transaction was rolled back, so the body starts afresh."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._writer, self.engine.begin() as conn:
                    return body(conn)
            except (
                IntegrityError, DataError, psycopg.IntegrityError, psycopg.DataError,
                sqlite3.IntegrityError, sqlite3.DataError,
            ) as exc:  # fmt: skip
                raise RejectedBatch(f"batch rejected by the database: {_message(exc)}") from exc
            except (DBAPIError, psycopg.Error) as exc:
                if sqlstate(exc) not in _RETRYABLE or attempt == _ATTEMPTS:
                    raise
                log.info("storage: transaction aborted (%s), attempt %d", sqlstate(exc), attempt)
        raise AssertionError("unreachable")

    def reclassify(self, decide_fn: Callable[[SiteMeasurement], str]) -> ReclassifyResult:
        """Recomputes every verdict from the stored records, then rebuilds the rollups.

        One transaction, so readers see the old verdicts and rollups or the new ones,
        never a mix; ingest goes on meanwhile and blocks only during the rebuild.
        """
        changed = total = undecodable = 0
        with self.engine.begin() as conn:
            last = b""
            while True:
                chunk = conn.execute(
                    select(measurements.c.id, measurements.c.verdict, measurements.c.record)
                    .where(measurements.c.id > last)
                    .order_by(measurements.c.id)
                    .limit(RECLASSIFY_CHUNK)
                ).all()
                if not chunk:
                    break
                updates = []
                for key, verdict, record in chunk:
                    try:
                        m = decode_measurement(record)
                    except WireError as exc:
                        undecodable += 1
                        log.warning("reclassify: keeping the verdict of %s: %s", key.hex(), exc)
                        continue
                    new = decide_fn(m)
                    if new != verdict:
                        updates.append({"key": key, "new_verdict": new})
                if updates:
                    conn.execute(
                        update(measurements)
                        .where(measurements.c.id == bindparam("key"))
                        .values(verdict=bindparam("new_verdict")),
                        updates,
                    )
                total += len(chunk)
                changed += len(updates)
                last = chunk[-1].id
            self._rebuild_rollups(conn)
        return ReclassifyResult(changed=changed, total=total, undecodable=undecodable)

    async def reclassify_async(
        self, decide_fn: Callable[[SiteMeasurement], str]
    ) -> ReclassifyResult:
        return await asyncio.to_thread(self.reclassify, decide_fn)

    def _count_rollups(self, conn: Connection, hourly: Counter[tuple[Any, ...]]) -> None:
        """Adds the hourly counts of newly stored rows to the four rollup tables."""
        daily: Counter[tuple[Any, ...]] = Counter()
        weekly: Counter[tuple[Any, ...]] = Counter()
        totals: Counter[tuple[Any, ...]] = Counter()
        for (hour, *cell), n in hourly.items():
            daily[(hour - hour % DAY_MS, *cell)] += n
            totals[tuple(cell)] += n
        # From the daily counts: fewer keys than the hourly ones, the same sums.
        for (day, *cell), n in daily.items():
            weekly[(week_start(day), *cell)] += n
        tables = (hourly, daily, weekly, totals)
        if self.backend == "postgresql":
            self._pg_count_rollups(conn, *tables)
            return
        # Through the driver, as the measurements: SQLAlchemy's per-row parameter handling
        # cost more than SQLite's upserts themselves.
        driver = cast("sqlite3.Connection", conn.connection.driver_connection)
        for statement, counts in zip(_SQLITE_ADD_ROLLUPS, tables, strict=True):
            driver.executemany(statement, [(*key, n) for key, n in sorted(counts.items())])

    @staticmethod
    def _pg_count_rollups(conn: Connection, *tables: Counter[tuple[Any, ...]]) -> None:
        hourly, daily, weekly, totals = (sorted(counts.items()) for counts in tables)
        # Every key of a batch has the batch's network: (asn, cc) of the first will do.
        asn, cc = hourly[0][0][2:4]
        params: dict[str, Any] = {"asn": asn, "cc": cc}
        for prefix, rows in (("h", hourly), ("d", daily), ("w", weekly)):
            params[f"{prefix}_start"] = [key[0] for key, _ in rows]
            params[f"{prefix}_domain"] = [key[1] for key, _ in rows]
            params[f"{prefix}_verdict"] = [key[4] for key, _ in rows]
            params[f"{prefix}_n"] = [n for _, n in rows]
        params["t_domain"] = [key[0] for key, _ in totals]
        params["t_verdict"] = [key[3] for key, _ in totals]
        params["t_n"] = [n for _, n in totals]
        driver = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
        with driver.cursor() as cursor:
            cursor.execute(_PG_ADD_ROLLUPS, params, binary=True)

    def _rebuild_rollups(self, conn: Connection) -> None:
        if self.backend == "postgresql":
            # Blocks ingest's rollup upserts (not readers) until commit. Ingests that
            # committed earlier are in the rebuild; later ones add to the rebuilt rows.
            # Listed in ingest's upsert order, so the two never wait on each other in a cycle.
            conn.execute(
                text(
                    "LOCK TABLE rollups, daily_rollups, weekly_rollups, rollup_totals"
                    " IN EXCLUSIVE MODE"
                )
            )
        m = measurements.c
        hour = (m.measured_ms // HOUR_MS) * HOUR_MS
        asn = func.coalesce(m.asn, UNKNOWN_ASN)
        cc = func.coalesce(m.cc, UNKNOWN_CC)
        conn.execute(delete(rollups))
        conn.execute(
            rollups.insert().from_select(
                [*_ROLLUP_DIMS, "count"],
                select(hour, m.domain, asn, cc, m.verdict, func.count()).group_by(
                    hour, m.domain, asn, cc, m.verdict
                ),
            )
        )
        # The coarser tables from the rows just rebuilt, in this transaction: the same counts,
        # from a table smaller than measurements.
        r = rollups.c
        day = (r.hour_ms // DAY_MS) * DAY_MS
        conn.execute(delete(daily_rollups))
        conn.execute(
            daily_rollups.insert().from_select(
                [*_DAILY_DIMS, "count"],
                select(day, r.domain, r.asn, r.cc, r.verdict, func.sum(r.count)).group_by(
                    day, r.domain, r.asn, r.cc, r.verdict
                ),
            )
        )
        d = daily_rollups.c
        # Non-negative before the division, so "//" floors alike on both backends.
        week = ((d.day_ms + WEEK_OFFSET_MS) // WEEK_MS) * WEEK_MS - WEEK_OFFSET_MS
        conn.execute(delete(weekly_rollups))
        conn.execute(
            weekly_rollups.insert().from_select(
                [*_WEEKLY_DIMS, "count"],
                select(week, d.domain, d.asn, d.cc, d.verdict, func.sum(d.count)).group_by(
                    week, d.domain, d.asn, d.cc, d.verdict
                ),
            )
        )
        w = weekly_rollups.c
        conn.execute(delete(rollup_totals))
        conn.execute(
            rollup_totals.insert().from_select(
                [*_TOTAL_DIMS, "count"],
                select(w.domain, w.asn, w.cc, w.verdict, func.sum(w.count)).group_by(
                    w.domain, w.asn, w.cc, w.verdict
                ),
            )
        )

    def rollup_counts(self, domain: str | None = None) -> dict[RollupKey, int]:
        """Counts per (domain, asn, cc, verdict), summed over all hours."""
        r = rollups.c
        query = select(r.domain, r.asn, r.cc, r.verdict, func.sum(r.count)).group_by(
            r.domain, r.asn, r.cc, r.verdict
        )
        if domain is not None:
            query = query.where(r.domain == domain)
        with self._reading() as conn:
            return {(d, a, c, v): int(n) for d, a, c, v, n in conn.execute(query)}

    def count_measurements(self) -> int:
        with self._reading() as conn:
            return int(conn.execute(select(func.count()).select_from(measurements)).scalar_one())

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                yield conn


def _message(error: Exception) -> str:
    return str(error.orig) if isinstance(error, DBAPIError) else str(error)


def open_storage(url: str) -> Storage:
    """The store at ``url`` (sqlite:///PATH or postgresql://...), migrated to the latest schema."""
    engine = make_engine(url)
    upgrade(engine)
    return Storage(engine)

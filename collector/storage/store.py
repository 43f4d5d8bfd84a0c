"""Collector, storage: the one interface to the measurement store, on SQLite or PostgreSQL.

``Storage`` hides the backend: both take the same Core statements, only the dialect's
``INSERT ... ON CONFLICT`` construct differs. Its methods block, so the aiohttp app
calls the ``*_async`` wrappers, which run them on a worker thread.

Ingest is one transaction: insert the measurements that are new (``ON CONFLICT DO
NOTHING ... RETURNING id`` says which ones *this* transaction inserted, even with other
collectors inserting the same ids at once), then add exactly those to the hourly
rollups. docs/design/003-storage.md has the argument.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import psycopg
from sqlalchemy import Insert, Table, bindparam, delete, func, select, text, update
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
    HOUR_MS,
    UNKNOWN_ASN,
    UNKNOWN_CC,
    agents,
    measurements,
    rollups,
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
_PG_ARRAYS = ("id", "measured_ms", "domain", "url", "verdict", "record")
_ROLLUP_DIMS = ("hour_ms", "domain", "asn", "cc", "verdict")


class Storage(AgentStore, QueryStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.backend = engine.dialect.name
        self._insert: Callable[[Table], Any] = (
            postgresql.insert if self.backend == "postgresql" else sqlite.insert
        )
        self._new_measurements: Insert = (
            self._insert(measurements).on_conflict_do_nothing().returning(measurements.c.id)
        )
        upsert = self._insert(rollups)
        self._add_rollups: Insert = upsert.on_conflict_do_update(
            index_elements=list(_ROLLUP_DIMS),
            set_={"count": rollups.c.count + upsert.excluded["count"]},
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
    ) -> IngestResult:
        """Stores the new records of one batch, all or nothing (:class:`RejectedBatch`)."""
        unique: dict[bytes, IngestRecord] = {}
        repeated: list[str] = []
        for record in records:
            if record.key in unique:
                repeated.append(record.id)
            else:
                unique[record.key] = record
        # Rows go in sorted by id and rollups by key: concurrent ingests that overlap then
        # take their row locks in the same order and cannot deadlock each other.
        rows = [
            {
                "id": key,
                "measured_ms": r.measured_ms,
                "received_ms": received_ms,
                "agent_id": agent_id,
                "asn": asn,
                "cc": cc,
                "domain": r.domain,
                "url": r.url,
                "verdict": r.verdict,
                "record": r.record,
            }
            for key, r in sorted(unique.items())
        ]
        dims = (UNKNOWN_ASN if asn is None else asn, UNKNOWN_CC if cc is None else cc)

        def write(conn: Connection) -> set[bytes]:
            inserted: set[bytes] = set()
            if rows and self.backend == "postgresql":
                columns = {c: [row[c] for row in rows] for c in _PG_ARRAYS}
                scalars = {"received_ms": received_ms, "agent_id": agent_id, "asn": asn, "cc": cc}
                driver = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
                with driver.cursor() as cursor:
                    # The driver's own cursor, inside the same transaction: SQLAlchemy
                    # has no way to ask psycopg for binary parameters.
                    cursor.execute(_PG_NEW_MEASUREMENTS, {**columns, **scalars}, binary=True)
                    inserted = {bytes(row[0]) for row in cursor.fetchall()}
            elif rows:
                inserted = set(conn.execute(self._new_measurements, rows).scalars())
            counts = Counter(
                (r.measured_ms - r.measured_ms % HOUR_MS, r.domain, *dims, r.verdict)
                for key, r in unique.items()
                if key in inserted
            )
            if counts:
                conn.execute(
                    self._add_rollups,
                    [
                        {**dict(zip(_ROLLUP_DIMS, key, strict=True)), "count": n}
                        for key, n in sorted(counts.items())
                    ],
                )
            return inserted

        inserted = self._write(write)
        stored = [r.id for key, r in unique.items() if key in inserted]
        duplicates = [r.id for key, r in unique.items() if key not in inserted] + repeated
        return IngestResult(stored=stored, duplicates=duplicates)

    async def ingest_async(
        self,
        agent_id: str,
        records: Sequence[IngestRecord],
        asn: int | None,
        cc: str | None,
        received_ms: int,
    ) -> IngestResult:
        return await asyncio.to_thread(self.ingest, agent_id, records, asn, cc, received_ms)

    def _write(self, body: Callable[[Connection], _T]) -> _T:
        """Runs ``body`` in a write transaction, again when PostgreSQL aborted it for a
        deadlock: the whole transaction was rolled back, so the body starts afresh."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    return body(conn)
            except (IntegrityError, DataError, psycopg.IntegrityError, psycopg.DataError) as exc:
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

    def _rebuild_rollups(self, conn: Connection) -> None:
        if self.backend == "postgresql":
            # Blocks ingest's rollup upserts (not readers) until commit. Ingests that
            # committed earlier are in the rebuild; later ones add to the rebuilt rows.
            conn.execute(text("LOCK TABLE rollups IN EXCLUSIVE MODE"))
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

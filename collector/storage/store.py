"""Collector storage: the one interface to the measurement store, on SQLite or PostgreSQL.

``Storage`` hides the backend: both take the same Core statements, only the dialect's
``INSERT ... ON CONFLICT`` construct differs. Its methods block, so the aiohttp app runs
them on worker threads: ingest on its ingest threads (``collector.ingest.accept``), the
queries through the ``*_async`` wrappers.

Ingest is one transaction: insert the measurements that are new (``ON CONFLICT DO
NOTHING``, learning which ones *this* transaction inserted, even with other collectors
inserting the same ids at once), then add exactly those to the rollups; the statements are
in ``collector.storage.writes``. docs/design/003-storage.md has the argument. The batch's
connectivity checks go in the same transaction, keyed by (agent, time), so a repeated
upload adds none of them twice; what the batch says of its agent (``AgentStatus``) goes on
the agent's row, in the update that makes the batch the agent's last.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from operator import attrgetter
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from collector.ingest.columns import uuid_text
from collector.storage.agents import AgentStore, accepts
from collector.storage.engine import READ_ONLY, make_engine, sqlstate, upgrade
from collector.storage.goodput import GoodputStore
from collector.storage.idmap import cell_ids, verdict_ids
from collector.storage.operators import OperatorStore
from collector.storage.queries import QueryStore
from collector.storage.reclassify import Reclassification
from collector.storage.records import (
    UNKNOWN_STATUS,
    BatchSeq,
    IngestRecord,
    IngestResult,
    RejectedBatch,
    ReplayedBatch,
)
from collector.storage.schema import (
    agents,
    batches,
    cells,
    connectivity,
    measurements,
    rollups,
    verdicts,
)
from collector.storage.writes import cell_network
from collector.storage.writes_postgres import PostgresWrites
from collector.storage.writes_sqlite import SQLiteWrites

log = logging.getLogger("netsonde.collector.storage")

RollupKey = tuple[str, int, str, str]  # domain, asn, cc, verdict
# PostgreSQL deadlock and serialization failures: the transaction was rolled back whole,
# so running it again is safe.
_RETRYABLE = frozenset({"40P01", "40001"})
_ATTEMPTS = 5
_T = TypeVar("_T")
_KEY = attrgetter("key")


class Storage(AgentStore, OperatorStore, QueryStore, Reclassification, GoodputStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.backend = engine.dialect.name
        self._insert: Callable[[Table], Any] = (
            postgresql.insert if self.backend == "postgresql" else sqlite.insert
        )
        # SQLite has one writer at a time. Ingest threads queue for it here, and the next
        # one starts the moment a write ends, where SQLite's busy handler would have them
        # poll its lock, sleeping up to 100 ms between tries. PostgreSQL writes concurrently.
        self._writer: AbstractContextManager[Any] = (
            nullcontext() if self.backend == "postgresql" else threading.Lock()
        )
        self.cells = cell_ids()
        self.verdicts = verdict_ids()
        # How many threads are worth running ingest in at once (None: as many as asyncio's
        # default), and the GIL switch interval to serve with (None: Python's 5 ms). With
        # one SQLite writer, two threads: one writes, its statements releasing the GIL,
        # while the other checks the next batch; more only contend for the GIL. After each
        # statement the writer must win the GIL back from that thread, which holds it up to
        # the switch interval while the writer holds SQLite's only write lock: 1 ms, not 5.
        # PostgreSQL writes in parallel and gains from more threads; for it neither setting
        # measured better. docs/design/004-ingest.md, "Third pass".
        sqlite_backend = self.backend != "postgresql"
        self.ingest_threads: int | None = 2 if sqlite_backend else None
        self.switch_interval_s: float | None = 0.001 if sqlite_backend else None

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
        seq: BatchSeq | None = None,
    ) -> IngestResult:
        """Stores the new records of one batch, and its connectivity checks (ms, online), all
        or nothing (:class:`RejectedBatch`). With ``seq``, the batch becomes the agent's last
        in the same write, or nothing is stored if a later one was accepted meanwhile
        (:class:`ReplayedBatch`, the rule of ``collector.storage.agents.accepts``)."""
        unique = dict(zip(map(_KEY, records), records, strict=True))
        repeated: list[str] = []
        if len(unique) < len(records):  # the first of repeated ids is the one stored
            unique.clear()
            for record in records:
                if record.key in unique:
                    repeated.append(record.id)
                else:
                    unique[record.key] = record
        network = cell_network(asn, cc)
        keys = [(domain, *network) for domain in {r.domain for r in unique.values()}]
        missing = self.cells.unknown(keys)
        new_verdicts = self.verdicts.unknown({r.verdict for r in unique.values()})
        if missing or new_verdicts:
            # Before the batch's transaction, in one of their own: a cell or a verdict id is
            # only a name, and one left behind by a batch refused later names nothing.
            def create(conn: Connection) -> None:
                self.cells.create(conn, missing)
                self.verdicts.create(conn, new_verdicts)

            self._write(create)
        ids = self.cells.ids()
        # The signed batch is kept, and named by its records, when there is one to keep.
        kept = seq if seq is not None and seq.body is not None and unique else None
        writes = (PostgresWrites if self.backend == "postgresql" else SQLiteWrites)(
            agent_id, asn, cc, received_ms, {key[0]: ids[key] for key in keys},
            self.verdicts.ids(), None if kept is None else kept.seq,
        )  # fmt: skip
        if seq is not None and kept is None:
            seq = seq._replace(body=None)
        ordered = sorted(unique.values())
        if isinstance(writes, SQLiteWrites) and self._write_batch(
            writes, writes.prepare_batch(ordered, sorted(dict(checks).items()), seq)
        ):
            inserted: set[bytes] | None = None
        else:
            inserted = self._write_transaction(
                writes, ordered, agent_id, asn, cc, received_ms, checks, seq
            )
        if inserted is None:  # all of them
            stored, duplicates = list(map(uuid_text, unique)), repeated
        else:
            stored = [uuid_text(key) for key in unique if key in inserted]
            duplicates = [uuid_text(key) for key in unique if key not in inserted] + repeated
        return IngestResult(stored=stored, duplicates=duplicates, checks=len(dict(checks)))

    def _write_batch(self, writes: SQLiteWrites, statement: tuple[str, list[Any]] | None) -> bool:
        """SQLite: the batch in one statement, its own transaction (writes_sqlite.py): True if
        stored, False if not (some record was stored already, or the batch is too large
        for one statement), and then nothing of it was. :class:`RejectedBatch` if the
        database refused it."""
        if statement is None:
            return False
        try:
            with self._writer:
                connection = self.engine.raw_connection()
                try:
                    return writes.run_batch(connection.driver_connection, statement)
                finally:
                    connection.close()
        except _REFUSED as exc:
            raise _refusal(exc) from exc

    def _write_transaction(
        self,
        writes: PostgresWrites | SQLiteWrites,
        ordered: Sequence[IngestRecord],
        agent_id: str,
        asn: int | None,
        cc: str | None,
        received_ms: int,
        checks: Sequence[tuple[int, bool]],
        seq: BatchSeq | None,
    ) -> set[bytes] | None:
        # Prepared before the transaction, which then only runs statements (writes.py).
        prepared = writes.prepare(ordered)

        def write(conn: Connection) -> set[bytes] | None:
            if seq is not None:
                _claim(conn, agent_id, seq, received_ms)
            inserted = writes.run(conn.connection.driver_connection, prepared)
            self._store_checks(conn, agent_id, checks, asn, cc, received_ms)
            # Kept only if some record of it is new, and so names it.
            if seq is not None and seq.body is not None and (inserted is None or inserted):
                row = {"agent_id": agent_id, "seq": seq.seq, "received_ms": received_ms,
                       "body": seq.body, "signature": seq.signature}  # fmt: skip
                conn.execute(self._insert(batches).on_conflict_do_nothing(), row)
            return inserted

        return self._write(write)

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
        deadlock: the whole transaction was rolled back, so the body starts afresh.
        :class:`RejectedBatch` if the database refused the batch."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._writer, self.engine.begin() as conn:
                    return body(conn)
            except _REFUSED as exc:
                raise _refusal(exc) from exc
            except (DBAPIError, psycopg.Error) as exc:
                if sqlstate(exc) not in _RETRYABLE or attempt == _ATTEMPTS:
                    raise
                log.info("storage: transaction aborted (%s), attempt %d", sqlstate(exc), attempt)
        raise AssertionError("unreachable")

    def rollup_counts(self, domain: str | None = None) -> dict[RollupKey, int]:
        """Counts per (domain, asn, cc, verdict), summed over all hours."""
        r, c, v = rollups.c, cells.c, verdicts.c
        query = (
            select(c.domain, c.asn, c.cc, v.name, func.sum(r.count))
            .select_from(rollups.join(cells, c.id == r.cell).join(verdicts, v.id == r.verdict))
            .group_by(c.domain, c.asn, c.cc, v.name)
        )
        if domain is not None:
            query = query.where(c.domain == domain)
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


# What the database raises for a batch it refuses (a value over a column's limit, an
# unknown agent): that batch is rejected, nothing of it stored.
_REFUSED = (
    IntegrityError, DataError, psycopg.IntegrityError, psycopg.DataError,
    sqlite3.IntegrityError, sqlite3.DataError,
)  # fmt: skip


def _claim(conn: Connection, agent_id: str, seq: BatchSeq, received_ms: int) -> None:
    """Makes ``seq`` the agent's last batch, its status the agent's, or raises
    :class:`ReplayedBatch`. First in the transaction: on PostgreSQL a second batch of the
    agent waits here for the first to commit and is then judged against it, before either
    has taken any other lock."""
    claimed = conn.execute(
        update(agents)
        .where(agents.c.id == agent_id, accepts(seq))
        .values(
            last_seq=seq.seq,
            last_signature=seq.signature,
            last_batch_ms=received_ms,
            **(seq.status or UNKNOWN_STATUS)._asdict(),
        )
    )
    if claimed.rowcount != 1:
        raise ReplayedBatch(f"batch {seq.seq} is older than the last accepted from {agent_id!r}")


def _refusal(error: Exception) -> RejectedBatch:
    message = str(error.orig) if isinstance(error, DBAPIError) else str(error)
    return RejectedBatch(f"batch rejected by the database: {message}")


def open_storage(url: str) -> Storage:
    """The store at ``url`` (sqlite:///PATH or postgresql://...), migrated to the latest schema."""
    engine = make_engine(url)
    upgrade(engine)
    return Storage(engine)

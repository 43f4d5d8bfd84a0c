"""Agent daemon: the spool, where measurements wait until the collector acknowledges them.

An SQLite file, bounded in size. A record is on disk once :meth:`Spool.add` returns, even
across kill -9 and power loss, and leaves only when :meth:`Spool.ack` is told the collector
acknowledged it, or when the spool is full: then the oldest records go first and the
running total of evictions, which travels in every batch, grows in the same transaction.

Connectivity checks (the agent's heartbeats) wait in a table of their own, one row per check
time, until a batch carrying them is accepted; beyond ``max_checks`` rows the oldest go, and
a running total of those counts them the same way.

The file itself, its permissions, journaling, schema, and the reserve that lets the deletes
(:meth:`Spool.ack`, :meth:`Spool.ack_checks`) go on where a full disk makes every other write
raise :class:`SpoolFull`: ``agent.daemon.spoolfile``. Each delete truncates the log after it.
The meta table, where the daemon keeps its small state and the spool its running totals:
``agent.daemon.spoolmeta``; the goodput samples: ``agent.daemon.spoolgoodput``.

Threading: one connection (``check_same_thread=False``) used only under a lock, so the
synchronous API works from any thread and the ``*_async`` wrappers run it in
``asyncio.to_thread``; the lock keeps one caller's transaction from interleaving with another's.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from agent.daemon import spoolfile
from agent.daemon.spoolfile import SpoolError, SpoolFull, SpoolRecordTooLarge
from agent.daemon.spoolgoodput import GoodputSpool
from agent.daemon.spoolmeta import (
    ACKED,
    CHECK_EVICTIONS,
    EVICTIONS,
    RESERVED,
    SPOOLED,
    STORED_BYTES,
    MetaSpool,
    MetaValue,
)

__all__ = [
    "CHECK_EVICTIONS",
    "AddResult",
    "MetaValue",
    "Spool",
    "SpoolError",
    "SpoolFull",
    "SpoolRecord",
    "SpoolRecordTooLarge",
]

DEFAULT_MAX_CHECKS = 10_000  # 35 days at the default 5-minute interval: past the collector's 30
# Far under SQLite's limit on bound parameters, whatever version the system has.
_CHUNK = 500
# Rows deleted per transaction on a full disk, so one transaction's log fits the reserve.
_FULL_CHUNK = 100


@dataclass(frozen=True)
class SpoolRecord:
    seq: int
    id: str
    record: bytes


@dataclass(frozen=True)
class AddResult:
    inserted: bool  # False: a record with this id was already spooled
    evicted: int  # oldest records dropped to make room, already added to the running total


class Spool(MetaSpool, GoodputSpool):
    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        max_bytes: int,
        max_checks: int = DEFAULT_MAX_CHECKS,
    ) -> None:
        self._conn = conn
        self.path = path
        self.max_bytes = max_bytes
        self.max_checks = max_checks
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, max_bytes: int, max_checks: int = DEFAULT_MAX_CHECKS
    ) -> Spool:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise SpoolError(f"spool max_bytes must be a positive integer, got {max_bytes!r}")
        if isinstance(max_checks, bool) or not isinstance(max_checks, int) or max_checks <= 0:
            raise SpoolError(f"spool max_checks must be a positive integer, got {max_checks!r}")
        file = Path(path)
        conn = spoolfile.connect(file)
        try:
            spoolfile.make_durable(conn, file)
            spool = cls(conn, file, max_bytes, max_checks)
            with spool._transaction() as transaction:
                spoolfile.migrate(transaction, file, RESERVED)
        except sqlite3.Error as exc:
            conn.close()
            raise spoolfile.spool_error(exc, file) from exc
        except SpoolError:
            conn.close()
            raise
        return spool

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The lock plus BEGIN IMMEDIATE ... COMMIT: all of it happens, or none of it."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                # A failed COMMIT (disk full, I/O error) may leave the transaction open.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise spoolfile.spool_error(exc, self.path) from exc

    # -- records ---------------------------------------------------------------------------

    def add(
        self,
        record_bytes: bytes,
        measurement_id: str,
        measured_ms: int,
        *,
        usage: tuple[str, int] | None = None,
    ) -> AddResult:
        """Stores one record, durably once this returns. Adding an id already spooled is a
        no-op, so a daemon restarted mid-run can re-add without duplicating. ``usage`` is a
        (meta key, bytes) the daemon's bandwidth count adds in the same transaction."""
        if not isinstance(record_bytes, bytes):
            raise TypeError("spool records are bytes (agent.wire.encode_measurement)")
        if not isinstance(measurement_id, str) or not measurement_id:
            raise SpoolError("spool records need a non-empty measurement id")
        size = len(record_bytes)
        if size > self.max_bytes:
            raise SpoolRecordTooLarge(
                f"record {measurement_id}: {size} bytes, more than the whole spool "
                f"({self.max_bytes} bytes); raise the spool size"
            )
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO records (id, measured_ms, record) VALUES (?, ?, ?)",
                (measurement_id, measured_ms, record_bytes),
            )
            if cursor.rowcount == 0:
                return AddResult(inserted=False, evicted=0)
            self._bump(conn, SPOOLED, 1)
            if usage is not None and usage[0] not in RESERVED:
                self._add_meta(conn, *usage)
            total = self._bump(conn, STORED_BYTES, size)
            evicted = self._evict(conn, total - self.max_bytes) if total > self.max_bytes else 0
        return AddResult(inserted=True, evicted=evicted)

    def _evict(self, conn: sqlite3.Connection, excess: int) -> int:
        freed = count = cutoff = 0
        # The new record has the highest seq and fits on its own, so it is never reached.
        for seq, size in conn.execute("SELECT seq, length(record) FROM records ORDER BY seq"):
            freed, count, cutoff = freed + size, count + 1, seq
            if freed >= excess:
                break
        conn.execute("DELETE FROM records WHERE seq <= ?", (cutoff,))
        self._bump(conn, STORED_BYTES, -freed)
        self._bump(conn, EVICTIONS, count)
        return count

    def peek(self, limit: int) -> list[SpoolRecord]:
        """Up to ``limit`` records, oldest first, left in place until acknowledged."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, id, record FROM records ORDER BY seq LIMIT ?", (max(limit, 0),)
            ).fetchall()
        return [SpoolRecord(seq, id_, bytes(record)) for seq, id_, record in rows]

    def ack(self, ids: Iterable[str]) -> int:
        """Deletes the records the collector acknowledged (stored or duplicate alike); ids not
        in the spool (already acknowledged, or evicted) are ignored. Returns how many went."""
        return self._delete(list(dict.fromkeys(ids)), self._delete_records)

    def _delete_records(self, conn: sqlite3.Connection, chunk: list[str]) -> int:
        marks = ",".join("?" * len(chunk))
        count, size = conn.execute(
            f"SELECT count(*), coalesce(sum(length(record)), 0) FROM records WHERE id IN ({marks})",
            chunk,
        ).fetchone()
        conn.execute(f"DELETE FROM records WHERE id IN ({marks})", chunk)
        self._bump(conn, STORED_BYTES, -size)
        self._bump(conn, ACKED, count)
        return int(count)

    def _delete(
        self, keys: list[Any], delete: Callable[[sqlite3.Connection, list[Any]], int]
    ) -> int:
        """``delete`` of every key in one transaction, or on a full disk, the reserve released,
        :data:`_FULL_CHUNK` per transaction; then the log is truncated, the reserve refilled."""
        try:
            with self._transaction() as conn:
                deleted = sum(
                    delete(conn, keys[i : i + _CHUNK]) for i in range(0, len(keys), _CHUNK)
                )
        except SpoolFull:
            spoolfile.release_reserve(self.path)
            deleted = 0
            for start in range(0, len(keys), _FULL_CHUNK):
                with self._transaction() as conn:
                    deleted += delete(conn, keys[start : start + _FULL_CHUNK])
                spoolfile.checkpoint(self._conn, self._lock)
        spoolfile.checkpoint(self._conn, self._lock)
        spoolfile.fill_reserve(self.path)
        return deleted

    def depth(self) -> tuple[int, int]:
        """(records, bytes of records) waiting for upload."""
        with self._lock:
            count = self._conn.execute("SELECT count(*) FROM records").fetchone()[0]
            size = self._get(STORED_BYTES)
        return int(count), int(size)

    def backlog(self) -> tuple[int, int]:
        """(records, checks) waiting for upload: what each batch tells the collector."""
        with self._lock:
            row = self._conn.execute(
                "SELECT (SELECT count(*) FROM records), (SELECT count(*) FROM checks)"
            ).fetchone()
        return int(row[0]), int(row[1])

    def evictions(self) -> int:
        """Records dropped unsent since the spool was created: a running total, never reset,
        so the collector can tell how many it will never see."""
        with self._lock:
            return int(self._get(EVICTIONS))

    def totals(self) -> dict[str, int]:
        """The running totals since the spool was created, read together: ``spooled`` (added),
        ``acked`` (deleted by :meth:`ack`), ``evicted``; ``waiting`` is what is still here.
        ``spooled == acked + evicted + waiting`` always holds."""
        with self._lock:
            count = self._conn.execute("SELECT count(*) FROM records").fetchone()[0]
            return {
                "spooled": int(self._get(SPOOLED)),
                "acked": int(self._get(ACKED)),
                "evicted": int(self._get(EVICTIONS)),
                "waiting": int(count),
            }

    # -- connectivity checks ---------------------------------------------------------------

    def add_check(self, ms: int, online: bool) -> int:
        """Stores one check, durably once this returns; returns how many of the oldest checks
        were evicted to stay within ``max_checks``. A second check at the same ms replaces
        the first: the wire format keys checks by time."""
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
            raise SpoolError(f"a check time is Unix ms, got {ms!r}")
        if not isinstance(online, bool):
            raise TypeError("a check's state is a bool (online)")
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO checks VALUES (?, ?)", (ms, int(online)))
            excess = conn.execute("SELECT count(*) FROM checks").fetchone()[0] - self.max_checks
            if excess <= 0:
                return 0
            conn.execute(
                "DELETE FROM checks WHERE ms IN (SELECT ms FROM checks ORDER BY ms LIMIT ?)",
                (excess,),
            )
            self._bump(conn, CHECK_EVICTIONS, excess)
        return int(excess)

    def peek_checks(self, limit: int) -> list[tuple[int, bool]]:
        """Up to ``limit`` checks (ms, online), oldest first, left until acknowledged."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT ms, online FROM checks ORDER BY ms LIMIT ?", (max(limit, 0),)
            ).fetchall()
        return [(int(ms), bool(online)) for ms, online in rows]

    def ack_checks(self, times: Iterable[int]) -> int:
        """Deletes the checks at these times (the collector stored them, or they can never be
        sent); returns how many went."""
        return self._delete(list(dict.fromkeys(times)), self._delete_checks)

    @staticmethod
    def _delete_checks(conn: sqlite3.Connection, chunk: list[int]) -> int:
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM goodput WHERE ms IN ({marks})", chunk)
        return int(conn.execute(f"DELETE FROM checks WHERE ms IN ({marks})", chunk).rowcount)

    # -- asyncio ---------------------------------------------------------------------------

    async def add_async(
        self,
        record_bytes: bytes,
        measurement_id: str,
        measured_ms: int,
        *,
        usage: tuple[str, int] | None = None,
    ) -> AddResult:
        return await asyncio.to_thread(
            self.add, record_bytes, measurement_id, measured_ms, usage=usage
        )

    async def peek_async(self, limit: int) -> list[SpoolRecord]:
        return await asyncio.to_thread(self.peek, limit)

    async def ack_async(self, ids: Iterable[str]) -> int:
        return await asyncio.to_thread(self.ack, list(ids))  # a generator is not thread-safe

    async def depth_async(self) -> tuple[int, int]:
        return await asyncio.to_thread(self.depth)

    async def backlog_async(self) -> tuple[int, int]:
        return await asyncio.to_thread(self.backlog)

    async def evictions_async(self) -> int:
        return await asyncio.to_thread(self.evictions)

    async def add_check_async(self, ms: int, online: bool) -> int:
        return await asyncio.to_thread(self.add_check, ms, online)

    async def peek_checks_async(self, limit: int) -> list[tuple[int, bool]]:
        return await asyncio.to_thread(self.peek_checks, limit)

    async def ack_checks_async(self, times: Iterable[int]) -> int:
        return await asyncio.to_thread(self.ack_checks, list(times))

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

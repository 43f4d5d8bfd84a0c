"""Agent daemon: the spool's meta table, small state under a key, a part of
:class:`agent.daemon.spool.Spool`.

The daemon keeps its state there (``agent.daemon.state``: last run, next run, counters) for
``netsonde-agent status`` and for the mode it execs into. The spool keeps its own running
totals in the same table, under :data:`RESERVED` keys that only it may change, in the
transactions that change what they count.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager
from typing import Any

from agent.daemon.spoolfile import SpoolError

__all__ = [
    "ACKED",
    "CHECK_EVICTIONS",
    "EVICTIONS",
    "RESERVED",
    "SPOOLED",
    "STORED_BYTES",
    "MetaSpool",
    "MetaValue",
]

# Internal counters share the meta table with the daemon's state but must only change in the
# transactions that keep them consistent with the records.
EVICTIONS = "evictions"
STORED_BYTES = "stored_bytes"
# The agent's own totals, bumped in the same transaction as the records they count, so kill -9
# can never leave them out of step: records added, and records deleted by ack().
SPOOLED = "spooled_total"
ACKED = "acked_total"
CHECK_EVICTIONS = "check_evictions"  # checks evicted unsent: kept like the records' total
RESERVED = frozenset({EVICTIONS, STORED_BYTES, SPOOLED, ACKED, CHECK_EVICTIONS})

MetaValue = int | str


class MetaSpool:
    _conn: sqlite3.Connection
    _lock: threading.Lock

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # the spool's own

    @staticmethod
    def _bump(conn: sqlite3.Connection, key: str, delta: int) -> int:
        conn.execute("UPDATE meta SET value = value + ? WHERE key = ?", (delta, key))
        value: int = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]
        return value

    def _get(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def get_meta(self, key: str) -> MetaValue | None:
        with self._lock:
            value: MetaValue | None = self._get(key)
        return value

    def set_meta(self, key: str, value: MetaValue) -> None:
        """Small daemon state (last successful upload ms, last run ms) for ``status``."""
        if key in RESERVED:
            raise SpoolError(f"spool meta key {key!r} is maintained by the spool itself")
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"spool meta values are int or str, got {type(value).__name__}")
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def bump_meta(self, key: str, delta: int) -> int:
        """Adds ``delta`` to an integer meta value (missing counts as 0) in one transaction;
        returns the new value. For daemon counters that must not lose a concurrent update."""
        if key in RESERVED:
            raise SpoolError(f"spool meta key {key!r} is maintained by the spool itself")
        with self._transaction() as conn:
            return self._add_meta(conn, key, delta)

    @staticmethod
    def _add_meta(conn: sqlite3.Connection, key: str, delta: int) -> int:
        conn.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            "SET value = coalesce(value, 0) + excluded.value",
            (key, delta),
        )
        value: int = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]
        return int(value)

    def delete_meta(self, key: str) -> None:
        if key in RESERVED:
            raise SpoolError(f"spool meta key {key!r} is maintained by the spool itself")
        with self._transaction() as conn:
            conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    def meta_keys(self, prefix: str) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT key FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
            ).fetchall()
        return [str(key) for (key,) in rows]

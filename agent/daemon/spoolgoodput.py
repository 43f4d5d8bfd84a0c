"""Agent daemon: the spool's goodput samples (``agent.daemon.goodput``), a part of
:class:`agent.daemon.spool.Spool`.

A sample sits in the ``goodput`` table keyed by the time of the check it was taken with, and
leaves with that check (``Spool.ack_checks`` deletes both); the uploader reads the samples of
the checks it sends, which then travel as ``[ms, online, bps]`` (``agent.wire.batch``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager

__all__ = ["GoodputSpool"]

_CHUNK = 500  # keys per statement, as the spool deletes them


class GoodputSpool:
    _conn: sqlite3.Connection
    _lock: threading.Lock

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # the spool's own

    def add_goodput(self, ms: int, bps: int) -> None:
        """Stores the sample taken with the check at ``ms``, after that check; samples of
        checks evicted meanwhile go."""
        if isinstance(bps, bool) or not isinstance(bps, int) or bps < 0:
            raise TypeError(f"a goodput is whole bits per second, got {bps!r}")
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO goodput VALUES (?, ?)", (ms, bps))
            conn.execute("DELETE FROM goodput WHERE ms NOT IN (SELECT ms FROM checks)")

    def goodput(self, times: Iterable[int]) -> dict[int, int]:
        """The samples of the checks at ``times``: check time -> bits per second."""
        keys = list(dict.fromkeys(times))
        found: dict[int, int] = {}
        with self._lock:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT ms, bps FROM goodput WHERE ms IN ({marks})"
                found.update((int(ms), int(bps)) for ms, bps in self._conn.execute(query, chunk))
        return found

    async def add_goodput_async(self, ms: int, bps: int) -> None:
        await asyncio.to_thread(self.add_goodput, ms, bps)

    async def goodput_async(self, times: Iterable[int]) -> dict[int, int]:
        return await asyncio.to_thread(self.goodput, list(times))

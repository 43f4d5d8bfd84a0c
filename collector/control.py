"""Collector control: the cache in front of control measurements (the test helper's core).

Pure asyncio, no HTTP and no probes: the web handler hands in a key and a
coroutine factory. Answers are cached for a TTL in a bounded LRU, concurrent
requests for the same key share one in-flight measurement (single flight), and
a semaphore bounds how many measurements run at once, so a burst of agents
asking about one newly blocked site costs the collector one measurement.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Literal, TypeVar

from agent.model.bogons import is_bogon

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# hit: from the cache; shared: joined a measurement another request started; miss: measured.
CacheStatus = Literal["hit", "shared", "miss"]


def measurable(address: str) -> bool:
    """Whether the collector may measure an IP an agent sent.

    Never a bogon: reaching into the collector's own host or LAN on an agent's say-so
    would make the control endpoint an SSRF vector.
    """
    return not is_bogon(address)


class ControlCache(Generic[K, V]):
    """TTL + LRU cache with single flight and bounded concurrency."""

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int,
        max_concurrent: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_concurrent < 1:
            raise ValueError("max_entries and max_concurrent must be at least 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._in_flight: dict[K, asyncio.Task[V]] = {}
        self._slots = asyncio.Semaphore(max_concurrent)

    def __len__(self) -> int:
        return len(self._entries)

    def _lookup(self, key: K) -> tuple[float, V] | None:
        """The live cache entry, refreshing its LRU position; an expired one is dropped."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() >= entry[0]:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> tuple[V, CacheStatus]:
        """The value for ``key``: cached, joined from an in-flight run, or computed now.

        An exception from ``compute`` reaches every waiter of that run and is not cached.
        """
        entry = self._lookup(key)
        if entry is not None:
            return entry[1], "hit"
        task = self._in_flight.get(key)
        status: CacheStatus = "shared"
        if task is None:
            status = "miss"
            task = asyncio.ensure_future(self._run(key, compute))
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._finish(key, done))
        # Shielded: one waiter going away (a client hanging up) must not cancel the others'.
        return await asyncio.shield(task), status

    async def _run(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        async with self._slots:
            return await compute()

    def _finish(self, key: K, task: asyncio.Task[V]) -> None:
        if self._in_flight.get(key) is task:
            del self._in_flight[key]
        if task.cancelled():
            return
        if task.exception() is not None:
            # Retrieved above, so asyncio does not log it again when no waiter is left.
            return
        if self.ttl > 0:
            self._store(key, task.result())

    def _store(self, key: K, value: V) -> None:
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        """Cancel the measurements still running (at shutdown) and forget everything."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._entries.clear()

"""Collector control: the cache in front of control measurements (the test helper's core),
and what a control may be asked to measure.

Pure asyncio, no HTTP and no probes: the web handler hands in a key and a
coroutine factory. Answers are cached for a TTL in a bounded LRU, concurrent
requests for the same key share one in-flight measurement (single flight), and
a semaphore bounds how many measurements run at once, so a burst of agents
asking about one newly blocked site costs the collector one measurement. A
measurement nobody waits for any more (every client hung up) is cancelled, and
one that overruns its deadline ends with ``TimeoutError``.

The control measures ``scheme://host:port/path``: the query string is left out of the
measurement and of the cache key (:func:`control_target`), so URLs that differ only there
cost one measurement, and the address filter is ``agent.model.addresses.may_reach``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, Literal, TypeVar

from agent.model.addresses import IPNetwork, may_reach
from agent.model.measurement import Target

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# hit: from the cache; shared: joined a measurement another request started; miss: measured.
CacheStatus = Literal["hit", "shared", "miss"]


def measurable(address: str, allowed: Sequence[IPNetwork] = ()) -> bool:
    """Whether the collector may measure an IP an agent sent or a DNS answer gave.

    Only public addresses, or ones in a network the operator ``allowed``: reaching into
    the collector's own host or LAN, or a cloud metadata service, on an agent's say-so
    would make the control endpoint an SSRF vector.
    """
    return may_reach(address, allowed)


def control_target(target: Target) -> Target:
    """The target the control measures: without the query string, which is for the page's
    own logic, not for where it is served from; cut, it keeps the cache from being
    bypassed with ``?1``, ``?2``, ..."""
    url, _, _ = target.url.partition("?")  # the first "?" of a parsed URL starts its query
    return target if url == target.url else Target.parse(url)


class ControlCache(Generic[K, V]):
    """TTL + LRU cache with single flight, bounded concurrency and an optional deadline."""

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int,
        max_concurrent: int,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_concurrent < 1:
            raise ValueError("max_entries and max_concurrent must be at least 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self.deadline = deadline
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._in_flight: dict[K, asyncio.Task[V]] = {}
        self._waiters: dict[asyncio.Task[V], int] = {}
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

        An exception from ``compute`` (``TimeoutError`` past the deadline) reaches every
        waiter of that run and is not cached. When the last waiter is cancelled, so is the run.
        """
        entry = self._lookup(key)
        if entry is not None:
            return entry[1], "hit"
        task = self._in_flight.get(key)
        status: CacheStatus = "shared"
        if task is None:
            status = "miss"
            task = asyncio.ensure_future(self._run(compute))
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._finish(key, done))
        self._waiters[task] = self._waiters.get(task, 0) + 1
        try:
            # Shielded: one waiter going away (a client hanging up) must not cancel the others'.
            return await asyncio.shield(task), status
        finally:
            self._leave(key, task)

    def _leave(self, key: K, task: asyncio.Task[V]) -> None:
        left = self._waiters[task] - 1
        if left:
            self._waiters[task] = left
            return
        del self._waiters[task]
        if not task.done():
            # Nobody wants the answer any more; a later request starts afresh rather than
            # joining a run that is being cancelled.
            if self._in_flight.get(key) is task:
                del self._in_flight[key]
            task.cancel()

    async def _run(self, compute: Callable[[], Awaitable[V]]) -> V:
        async with self._slots:
            if self.deadline is None:
                return await compute()
            async with asyncio.timeout(self.deadline):
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

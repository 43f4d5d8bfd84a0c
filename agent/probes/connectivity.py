"""Agent probes: is this agent online at all?

What separates ``offline`` (a shutdown, or a local outage) from a blocked site. The agent is
online if the collector answers, or if a resolver answers a query for the benign name: the
configured public resolvers, else the system resolver from resolv.conf. The first positive
answer wins and the other checks are cancelled.

The collector is any object with ``async reachable() -> bool`` (``agent.api.control.HTTPControl``
in practice); a Protocol rather than an import keeps this layer below the site layer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from typing import Protocol

from agent.model.observations import DNSExchange
from agent.net.dns import system_resolve, udp_exchange

__all__ = ["CACHE_SECONDS", "CachedCheck", "Reachable", "check"]

CACHE_SECONDS = 30.0
# Rcodes that prove a remote resolver was reached. SERVFAIL does not: a local forwarder
# answers it when its own upstream is gone.
_REACHED_RCODES = frozenset({"NOERROR", "NXDOMAIN"})


class Reachable(Protocol):
    async def reachable(self) -> bool: ...


async def check(
    collector: Reachable | None,
    resolvers: Sequence[str],
    benign_name: str,
    timeout: float,
    *,
    resolv_conf: str = "/etc/resolv.conf",
) -> bool:
    """True as soon as one route to the outside answers; False if none does within ``timeout``."""
    attempts: list[Awaitable[bool]] = []
    if collector is not None:
        attempts.append(collector.reachable())
    if resolvers:
        attempts.extend(_public(server, benign_name, timeout) for server in resolvers)
    else:
        attempts.append(_system(benign_name, timeout, resolv_conf))
    tasks = [asyncio.ensure_future(a) for a in attempts]
    try:
        for next_done in asyncio.as_completed(tasks, timeout=timeout + 1.0):
            try:
                if await next_done:
                    return True
            except TimeoutError:
                return False
    finally:
        for task in tasks:
            task.cancel()
        # Reap the cancelled tasks so none outlives the check or logs "never retrieved".
        await asyncio.gather(*tasks, return_exceptions=True)
    return False


async def _public(server: str, name: str, timeout: float) -> bool:
    # No listening window: only whether a reply arrives matters, not a second injected one.
    exchange: DNSExchange = await udp_exchange(server, name, timeout=timeout, window=0.0)
    return any(reply.rcode in _REACHED_RCODES for reply in exchange.replies)


async def _system(name: str, timeout: float, resolv_conf: str) -> bool:
    resolution = await system_resolve(name, timeout=timeout, resolv_conf=resolv_conf)
    return resolution.failure is None


class CachedCheck:
    """``check`` behind a short cache, shaped as ``measure_site``'s ``is_online`` callable.

    During a shutdown every target fails at once; without the cache each of hundreds of
    targets would run its own check. Concurrent callers share one check in flight.
    """

    def __init__(
        self,
        collector: Reachable | None,
        resolvers: Sequence[str],
        benign_name: str,
        timeout: float,
        *,
        ttl: float = CACHE_SECONDS,
        resolv_conf: str = "/etc/resolv.conf",
    ) -> None:
        self._collector = collector
        self._resolvers = tuple(resolvers)
        self._benign_name = benign_name
        self._timeout = timeout
        self._ttl = ttl
        self._resolv_conf = resolv_conf
        self._answer: tuple[float, bool] | None = None
        self._lock = asyncio.Lock()
        self.checks = 0  # how many real checks ran; the rest were served from the cache

    def remember(self, online: bool) -> None:
        """Record an answer learnt elsewhere (the collector check at start-up)."""
        self._answer = (time.monotonic(), online)

    def _cached(self) -> bool | None:
        if self._answer is None:
            return None
        at, online = self._answer
        return online if time.monotonic() - at < self._ttl else None

    async def __call__(self) -> bool:
        cached = self._cached()
        if cached is not None:
            return cached
        async with self._lock:
            # Another caller may have refreshed the answer while this one waited.
            cached = self._cached()
            if cached is not None:
                return cached
            self.checks += 1
            online = await check(
                self._collector,
                self._resolvers,
                self._benign_name,
                self._timeout,
                resolv_conf=self._resolv_conf,
            )
            self.remember(online)
            return online

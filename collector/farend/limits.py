"""Collector far end: what keeps it from being an open traffic source.

Every transfer belongs to an enrolled agent (its token names it) and is bounded three ways:
the bytes each agent may move per UTC day, the transfers it may run at once, and the
transfers the far end runs at once in all. A transfer reserves its requested size before it
starts and gives back what it did not use, so agents running transfers in parallel cannot
overshoot their day's cap. Refusals are counted by reason, for ``/metrics``
(``collector.web.metrics``), through the ``count`` callback.

Kept in memory: a far end that restarts starts the day afresh for everyone, which at worst
doubles one day's cap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["DIRECTIONS", "REFUSALS", "Allowance", "Counts", "NoCounts"]

# Why the far end turned something away (no token, the daily cap, too many at once, a bad
# request, a datagram from an address with no lease), and what it moves; pre-set on the
# metrics so that every series exists from the start.
REFUSALS = ("token", "cap", "busy", "request", "udp")
DIRECTIONS = ("down", "up", "udp", "echo")  # echo: the TCP echo (collector.farend.rawecho)


class Counts(Protocol):
    """Where the far end reports what it refused and moved: the collector's metrics."""

    def refused(self, reason: str) -> None: ...

    def moved(self, direction: str, nbytes: int) -> None: ...


class NoCounts:
    """The counts of a far end that reports to no metrics."""

    def refused(self, reason: str) -> None:
        pass

    def moved(self, direction: str, nbytes: int) -> None:
        pass


@dataclass
class Allowance:
    daily_bytes: int
    max_transfers: int
    per_agent: int
    clock: Callable[[], float] = time.time
    _day: int = -1
    _used: dict[str, int] = field(default_factory=dict)
    _running: dict[str, int] = field(default_factory=dict)

    def _today(self) -> dict[str, int]:
        day = int(self.clock() // 86400)
        if day != self._day:
            self._day, self._used = day, {}
        return self._used

    @property
    def running(self) -> int:
        return sum(self._running.values())

    def start(self, agent: str) -> bool:
        """Takes a transfer slot for ``agent``; False when it or the far end is at its bound."""
        if self.running >= self.max_transfers or self._running.get(agent, 0) >= self.per_agent:
            return False
        self._running[agent] = self._running.get(agent, 0) + 1
        return True

    def finish(self, agent: str) -> None:
        left = self._running.get(agent, 0) - 1
        if left > 0:
            self._running[agent] = left
        else:
            self._running.pop(agent, None)

    def reserve(self, agent: str, nbytes: int) -> bool:
        """Counts ``nbytes`` against today's cap, or refuses (False) if they would pass it."""
        used = self._today()
        if used.get(agent, 0) + nbytes > self.daily_bytes:
            return False
        used[agent] = used.get(agent, 0) + nbytes
        return True

    def settle(self, agent: str, reserved: int, moved: int) -> None:
        """Gives back what a transfer reserved and did not move."""
        used = self._today()
        if agent in used:
            used[agent] = max(0, used[agent] - max(0, reserved - moved))

    def used(self, agent: str) -> int:
        return self._today().get(agent, 0)

"""Agent daemon: when to try an upload again after a failure (``agent.daemon.upload``).

Exponential backoff with full jitter between rounds of collector URLs, at least the
collector's Retry-After, and the longest wait for what only the operator can fix.
"""

from __future__ import annotations

import random

from agent.model import failures

__all__ = ["AUTH_FAILURES", "Backoff", "parse_retry_after"]

# Failures no other URL or quick retry can fix: the operator has to act.
AUTH_FAILURES = frozenset({failures.UPLOAD_UNAUTHORIZED, failures.UPLOAD_REVOKED})


class Backoff:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**n)] for the
    n-th consecutive failure, so agents that lost the collector together do not return in
    lockstep when it comes back."""

    def __init__(
        self, base: float = 1.0, cap: float = 900.0, rng: random.Random | None = None
    ) -> None:
        self.base, self.cap = base, cap
        self.rng = rng if rng is not None else random.Random()
        self.attempts = 0

    def next_delay(self) -> float:
        # The exponent is bounded so a week of failures cannot overflow the float.
        ceiling = min(self.cap, self.base * 2 ** min(self.attempts, 64))
        self.attempts += 1
        return self.rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self.attempts = 0

    def after(self, failure: str, streak: int, urls: int, retry_after: float) -> float:
        """Seconds to wait after the ``streak``-th failure in a row, ``failure``, with
        ``urls`` collector URLs to go round. Every URL is tried once before sleeping, so a
        dead first collector costs no delay; a 401 or 403 sleeps the full cap, since only
        the operator can fix it; a 429 sleeps at least its ``retry_after``."""
        if failure in AUTH_FAILURES:
            delay = self.cap
        elif streak % urls == 0:
            delay = self.next_delay()
        else:
            delay = 0.0
        return max(delay, min(retry_after, self.cap))


def parse_retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header; the HTTP-date form (never sent by our collector)
    and garbage count as 0, so the ordinary backoff applies."""
    try:
        seconds = float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
    return seconds if 0.0 <= seconds < 86_400.0 else 0.0

"""Agent verdict: the throttle test's rule, a pure function from its rounds to a verdict.

``throttled`` means the transfers that named the target were *consistently* far slower than
the same transfers with a benign name, on the same path to the same far end, in the same
direction. Consistently: every trigger transfer is slower than every benign one (with three
of each, chance alone orders them so one time in twenty), the medians are at least
:data:`FACTOR` apart (a noisy or lossy link spreads transfers, it does not rank them by name),
and every trigger transfer was held (it moved less than it asked for before its window ended,
or ran half its window): a transfer that finished in milliseconds was not held at any rate,
however its few milliseconds compare.
A whole link that is slow slows both alike, so it never gives ``throttled``: that is a
degraded network, which the collector tells from the connectivity checks.

The estimated limit is the trigger transfers' median goodput; a throttler that holds a flow
at a rate lets its goodput reach that rate, less the headers. Why these rules:
docs/design/012-throttling.md.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from agent.model.measurement import Verdict
from agent.model.observations import ThrottleObservation, Transfer

__all__ = ["FACTOR", "MIN_ROUNDS", "decide_throttle", "goodput_bps"]

MIN_ROUNDS = 3
FACTOR = 4.0
# A window shorter than this is too short to time (a fast transfer can end in a few reads):
# its goodput is then taken over the whole request, a lower bound.
MIN_WINDOW_US = 20_000
_OK_STATUS = 200

Evidence = dict[str, str | int | float | bool]


def goodput_bps(t: Transfer) -> float | None:
    """Bits per second of payload; None for a transfer that moved nothing or failed."""
    if t.failure is not None or t.status != _OK_STATUS or t.bytes <= 0:
        return None
    if t.us >= MIN_WINDOW_US and t.bytes > t.skip:
        return (t.bytes - t.skip) * 8e6 / t.us
    if t.total_us > 0:
        return t.bytes * 8e6 / t.total_us
    return None


def _chosen(transfers: Sequence[Transfer], up: bool, trigger: bool) -> list[Transfer]:
    return [t for t in transfers if t.up == up and t.trigger == trigger]


def _rates(transfers: Sequence[Transfer]) -> list[float]:
    return [rate for t in transfers if (rate := goodput_bps(t)) is not None]


def _kbps(bps: float) -> int:
    return round(bps / 1000)


def _held(t: Transfer, size: int, window_ms: int) -> bool:
    """Whether the transfer was still going when its window ended: it moved less than it asked
    for, or it ran at least half its window."""
    return (size > 0 and t.bytes < size) or (window_ms > 0 and t.us >= window_ms * 500)


class _Direction:
    """One direction's trigger and benign goodputs, and what they say."""

    def __init__(self, obs: ThrottleObservation, up: bool) -> None:
        triggers = _chosen(obs.transfers, up, True)
        self.trigger = _rates(triggers)
        self.benign = _rates(_chosen(obs.transfers, up, False))
        size = obs.up_size if up else obs.down_size
        self.held = bool(triggers) and all(_held(t, size, obs.window_ms) for t in triggers)

    @property
    def decided(self) -> bool:
        return len(self.trigger) >= MIN_ROUNDS and len(self.benign) >= MIN_ROUNDS

    @property
    def ratio(self) -> float:
        slow = statistics.median(self.trigger)
        return statistics.median(self.benign) / slow if slow > 0 else float("inf")

    @property
    def throttled(self) -> bool:
        if not (self.decided and self.held):
            return False
        return max(self.trigger) < min(self.benign) and self.ratio >= FACTOR

    def evidence(self) -> Evidence:
        ratio = self.ratio
        return {
            "limit_kbps": _kbps(statistics.median(self.trigger)),
            "benign_kbps": _kbps(statistics.median(self.benign)),
            "ratio": round(ratio, 1) if ratio != float("inf") else 0.0,
        }


def _refusal(obs: ThrottleObservation) -> Verdict | None:
    """Inconclusive when the test did not run, or the far end turned a transfer away."""
    if obs.failure is not None:
        return Verdict("inconclusive", {"reason": "not run", "failure": obs.failure})
    for t in obs.transfers:
        if t.status is not None and t.status != _OK_STATUS:
            return Verdict("inconclusive", {"reason": "far end refused", "status": t.status})
    return None


def _undecided(obs: ThrottleObservation) -> Verdict:
    """Too few transfers went through to compare: say which side failed, and how."""
    failed = [t for t in obs.transfers if goodput_bps(t) is None]
    triggers = [t for t in failed if t.trigger]
    side = "trigger" if triggers and len(triggers) == len(failed) else "far end"
    evidence: Evidence = {"reason": f"{side} transfers failed", "trigger": obs.trigger}
    failure = next((t.failure for t in failed if t.failure is not None), None)
    if failure is not None:
        evidence["failure"] = failure
    return Verdict("inconclusive", evidence)


def decide_throttle(obs: ThrottleObservation) -> Verdict:
    """``throttled``, ``ok`` or ``inconclusive`` for one throttle test; total and deterministic."""
    refused = _refusal(obs)
    if refused is not None:
        return refused
    down, up = _Direction(obs, False), _Direction(obs, True)
    if down.throttled or up.throttled:
        main = down if down.throttled else up
        both = down.throttled and up.throttled
        direction = "both" if both else ("down" if main is down else "up")
        evidence: Evidence = {"trigger": obs.trigger, "direction": direction}
        evidence.update(main.evidence())
        if both:
            evidence["up_limit_kbps"] = up.evidence()["limit_kbps"]
        return Verdict("throttled", evidence)
    if not (down.decided and up.decided):
        return _undecided(obs)
    evidence = {"trigger": obs.trigger, **down.evidence()}
    evidence["trigger_kbps"] = evidence.pop("limit_kbps")
    return Verdict("ok", evidence)

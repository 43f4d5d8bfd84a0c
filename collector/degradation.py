"""Collector, degradation: the agents' benign goodput samples turned into ``degraded`` periods.
Pure: no I/O.

Every few connectivity checks an agent downloads a small benign payload from the far end
(``agent.daemon.goodput``). Each agent is its own yardstick, since links differ by orders
of magnitude: a sample is *degraded* when its goodput is below :data:`RATIO` of the agent's
*baseline*, the median of its own normal samples of the :data:`BASELINE_MS` before it (at
least :data:`MIN_BASELINE` of them; degraded samples stay out of it, so a week-long
degradation does not become the norm). Per agent, a ``degraded`` period is a run of at
least :data:`MIN_RUN` consecutive degraded samples (one slow sample is a busy moment, not a
degraded network): it starts at the first, ends at the first normal sample after it
(``None`` while none has come), and ``last_normal_ms`` is the normal sample before it.

Then periods in one network (ASN, country) that overlap merge into one event, as outages do
(``collector.outages``), with how many agents were degraded and how many in that network
sent samples during it: "every agent of the network is slow" is a cable or congestion,
where "only X is slow" while the goodput holds is a throttler (the ``throttled`` verdict).
Why these thresholds: docs/design/011-protocols-degradation.md.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby

__all__ = ["BASELINE_MS", "DEGRADED", "MIN_BASELINE", "MIN_RUN", "RATIO", "Degradation",
           "Sample", "agent_degradations", "find_degradations"]  # fmt: skip

DEGRADED = "degraded"
BASELINE_MS = 7 * 86_400_000
MIN_BASELINE = 5
RATIO = 0.3
MIN_RUN = 2


@dataclass(frozen=True)
class Sample:
    agent_id: str
    ms: int  # the check it was taken with
    bps: int  # goodput, bits per second
    asn: int | None  # the network of the upload that carried it
    cc: str | None


@dataclass(frozen=True)
class Degradation:
    asn: int | None
    cc: str | None
    start_ms: int
    end_ms: int | None  # the first normal sample after it; None while it goes on
    last_normal_ms: int | None  # the normal sample before it
    agents: tuple[str, ...]  # the agents degraded during it
    rates: tuple[int, ...]  # the degraded samples' goodputs, bits per second
    baselines: tuple[int, ...]  # each degraded agent's baseline as its period began
    sampled: int = 0  # agents of this network that sent a sample during it

    kind = DEGRADED

    @property
    def goodput_bps(self) -> int:
        return round(statistics.median(self.rates))

    @property
    def baseline_bps(self) -> int:
        return round(statistics.median(self.baselines))


def agent_degradations(samples: Sequence[Sample]) -> list[Degradation]:
    """One agent's degraded periods, oldest first; ``samples`` are that agent's, by time."""
    out: list[Degradation] = []
    normal: deque[Sample] = deque()  # the baseline's window
    run: list[Sample] = []
    baseline = 0.0
    last_normal: int | None = None

    def close(end_ms: int | None) -> None:
        if len(run) >= MIN_RUN:
            first = run[0]
            out.append(Degradation(
                first.asn, first.cc, first.ms, end_ms, last_normal, (first.agent_id,),
                tuple(s.bps for s in run), (round(baseline),),
            ))  # fmt: skip

    for sample in samples:
        while normal and normal[0].ms < sample.ms - BASELINE_MS:
            normal.popleft()
        known = len(normal) >= MIN_BASELINE
        median = statistics.median(s.bps for s in normal) if known else 0.0
        if known and sample.bps < RATIO * median:
            if not run:
                baseline = median
            run.append(sample)
            continue
        close(sample.ms)  # a lone slow sample makes no period, and stays out of the baseline
        run = []
        normal.append(sample)
        last_normal = sample.ms
    close(None)
    return out


def _merge(found: Iterable[Degradation]) -> list[Degradation]:
    def network(d: Degradation) -> tuple[int, str]:
        return -1 if d.asn is None else d.asn, "" if d.cc is None else d.cc

    merged: list[Degradation] = []
    for _, group in groupby(sorted(found, key=network), key=network):
        current: Degradation | None = None
        for d in sorted(group, key=lambda d: d.start_ms):
            if current is not None and (current.end_ms is None or d.start_ms <= current.end_ms):
                end = None if d.end_ms is None or current.end_ms is None else max(
                    d.end_ms, current.end_ms
                )  # fmt: skip
                current = Degradation(
                    current.asn, current.cc, current.start_ms, end, current.last_normal_ms,
                    tuple(sorted({*current.agents, *d.agents})), current.rates + d.rates,
                    current.baselines + d.baselines,
                )  # fmt: skip
                continue
            if current is not None:
                merged.append(current)
            current = d
        if current is not None:
            merged.append(current)
    return merged


def _sampled(d: Degradation, samples: Sequence[Sample]) -> int:
    """The agents of ``d``'s network with a sample during it (its end included)."""
    return len({
        s.agent_id for s in samples
        if s.asn == d.asn and s.cc == d.cc and d.start_ms <= s.ms
        and (d.end_ms is None or s.ms <= d.end_ms)
    })  # fmt: skip


def find_degradations(
    samples: Iterable[Sample], *, since_ms: int | None = None, until_ms: int | None = None
) -> list[Degradation]:
    """The degraded periods in ``samples`` (any agents, any order) that overlap
    [since, until), newest first."""
    ordered = sorted(samples, key=lambda s: (s.agent_id, s.ms))
    found: list[Degradation] = []
    for _, group in groupby(ordered, key=lambda s: s.agent_id):
        found += agent_degradations(list(group))
    events = [
        d
        for d in _merge(found)
        if (until_ms is None or d.start_ms < until_ms)
        and (since_ms is None or d.end_ms is None or d.end_ms > since_ms)
    ]
    events = [
        Degradation(d.asn, d.cc, d.start_ms, d.end_ms, d.last_normal_ms, d.agents, d.rates,
                    d.baselines, _sampled(d, ordered))
        for d in events
    ]  # fmt: skip
    events.sort(key=lambda d: (-d.start_ms, -1 if d.asn is None else d.asn, d.cc or ""))
    return events

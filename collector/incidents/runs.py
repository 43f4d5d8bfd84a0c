"""Collector incidents: the threshold logic, from windows of counts to blocking incidents. Pure.

Each window of one domain on one network (ASN) is, by :class:`Thresholds`:

- **blocked**: at least ``min_blocking`` blocking measurements, making at least
  ``min_share`` of the measurements (``offline`` ones aside: they say nothing about the
  site), from at least ``min_agents`` distinct agents;
- **clear**: at least ``min_blocking`` measurements, under ``min_share`` of them blocking:
  evidence that the site worked;
- **unknown**: anything else (no data, or too little to tell either way).

A run of blocked windows on a network goes on across unknown windows and ends at a clear
one: then its end is the end of its last blocked window; with no clear window after it, it
is ongoing. Runs of one domain on several networks whose spans (first blocked window to
last) overlap or touch are one incident. docs/design/008-incidents.md.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby

from collector.incidents.model import (
    BLOCKING,
    NOT_BLOCKING,
    UNCOUNTED,
    Incident,
    IncidentNetwork,
)
from collector.thresholds import Thresholds

__all__ = ["State", "Window", "blocking_incidents", "state"]


class State(enum.Enum):
    BLOCKED = "blocked"
    CLEAR = "clear"
    UNKNOWN = "unknown"


@dataclass
class Window:
    """One window of one domain on one network: its measurements by verdict, the networks'
    country codes met ("" unknown), and the agents that saw a blocking verdict in it."""

    domain: str
    asn: int
    start_ms: int
    counts: Counter[str] = field(default_factory=Counter)
    ccs: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)

    def blocking(self) -> int:
        return sum(n for verdict, n in self.counts.items() if verdict not in NOT_BLOCKING)

    def considered(self) -> int:
        return sum(n for verdict, n in self.counts.items() if verdict not in UNCOUNTED)


def state(window: Window, t: Thresholds) -> State:
    blocking, considered = window.blocking(), window.considered()
    share = blocking / considered if considered else 0.0
    if blocking >= t.min_blocking and share >= t.min_share and len(window.agents) >= t.min_agents:
        return State.BLOCKED
    if considered >= t.min_blocking and share < t.min_share:
        return State.CLEAR
    return State.UNKNOWN


@dataclass
class _Run:
    """Blocked windows of one network, and the unknown ones between them."""

    windows: list[Window]
    ended: bool = False

    @property
    def start_ms(self) -> int:
        return self.windows[0].start_ms

    def last_ms(self, window_ms: int) -> int:
        return self.windows[-1].start_ms + window_ms


def _network_runs(windows: Sequence[Window], t: Thresholds) -> list[_Run]:
    """One network's runs, oldest first; ``windows`` are its windows (with data) by time."""
    runs: list[_Run] = []
    current: _Run | None = None
    between: list[Window] = []  # unknown windows since the last blocked one
    for window in windows:
        found = state(window, t)
        if found is State.BLOCKED:
            if current is None:
                current = _Run([window])
            else:
                current.windows += [*between, window]
            between = []
        elif current is not None and found is State.CLEAR:
            current.ended = True
            runs.append(current)
            current, between = None, []
        elif current is not None:
            between.append(window)
    if current is not None:
        runs.append(current)
    return runs


def blocking_incidents(
    windows: Iterable[Window], t: Thresholds, *, first_ms: int | None = None
) -> list[Incident]:
    """The blocking incidents in ``windows`` (any domains, networks and order), newest
    first. ``first_ms``: the start of the first window looked at, for ``start_clipped``."""
    ordered = sorted(windows, key=lambda w: (w.domain, w.asn, w.start_ms))
    out: list[Incident] = []
    for domain, of_domain in groupby(ordered, key=lambda w: w.domain):
        runs = [
            (asn, run)
            for asn, of_network in groupby(of_domain, key=lambda w: w.asn)
            for run in _network_runs(list(of_network), t)
        ]
        runs.sort(key=lambda item: item[1].start_ms)
        group: list[tuple[int, _Run]] = []
        for item in runs:
            reach = max((r.last_ms(t.window_ms) for _, r in group), default=None)
            if reach is not None and item[1].start_ms > reach:
                out.append(_incident(domain, group, t, first_ms))
                group = []
            group.append(item)
        if group:
            out.append(_incident(domain, group, t, first_ms))
    out.sort(key=lambda i: (-i.start_ms, i.domain or ""))
    return out


def _incident(
    domain: str, group: list[tuple[int, _Run]], t: Thresholds, first_ms: int | None
) -> Incident:
    networks: list[IncidentNetwork] = []
    agents: set[str] = set()
    counts: Counter[str] = Counter()
    for asn, of_network in groupby(sorted(group, key=lambda item: item[0]), key=lambda i: i[0]):
        network = _network(asn, [run for _, run in of_network], t)
        networks.append(network[0])
        agents |= network[1]
        counts.update(network[0].counts)
    start = min(run.start_ms for _, run in group)
    last = max(run.last_ms(t.window_ms) for _, run in group)
    ended = all(n.end_ms is not None for n in networks)
    techniques = [v for v, _ in sorted(counts.items(), key=lambda vn: (-vn[1], vn[0]))]
    return Incident(
        kind=BLOCKING,
        domain=domain,
        start_ms=start,
        end_ms=last if ended else None,
        last_seen_ms=last,
        techniques=tuple(v for v in techniques if v not in NOT_BLOCKING),
        networks=tuple(networks),
        counts=dict(sorted(counts.items())),
        agents=len(agents),
        start_clipped=first_ms is not None and start <= first_ms,
    )


def _network(asn: int, runs: list[_Run], t: Thresholds) -> tuple[IncidentNetwork, set[str]]:
    """One network's runs in an incident as its part, and the agents behind it."""
    windows = [w for run in runs for w in run.windows]
    counts: Counter[str] = Counter()
    agents: set[str] = set()
    ccs: set[str] = set()
    for window in windows:
        counts.update(window.counts)
        agents |= window.agents
        ccs |= window.ccs
    last = runs[-1]
    known = sorted(cc for cc in ccs if cc)
    part = IncidentNetwork(
        asn=asn,
        cc=known[0] if known else None,
        start_ms=runs[0].start_ms,
        end_ms=last.last_ms(t.window_ms) if last.ended else None,
        counts=dict(sorted(counts.items())),
        agents=len(agents),
    )
    return part, agents

"""Collector, outages: the agents' connectivity checks turned into outage events. Pure: no I/O.

Per agent, in time order:

- an ``offline`` outage is a maximal run of consecutive offline checks. It starts at the first
  offline check and ends at the first online check after it (``None`` while none has come),
  so both ends are within one check interval of the truth; ``last_online_ms`` is the online
  check before it, which bounds how early it may really have begun.
- a ``silent`` outage is a gap in the heartbeats: two consecutive online checks further apart
  than ``SILENT_FACTOR`` times the agent's median spacing (an agent that lost power, or whose
  uplink died while it was off). It runs from the last check before the gap to the first
  after it. An agent whose last check is online and older than that, and than
  ``SILENT_TAIL_MS``, is silent still (``end_ms`` None). A gap before or inside an offline
  run is part of that run instead.

Then agents' outages of one kind in one network (ASN, country) whose intervals overlap merge
into one event that lists every agent involved.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby, pairwise

OFFLINE = "offline"
SILENT = "silent"
SILENT_FACTOR = 3
# A median of fewer spacings says little about an agent's rhythm.
MIN_SPACINGS = 3
# Checks reach the collector only with the agent's next upload (after any backoff), so the
# newest ones are always missing for a while: only a longer silence is an outage yet.
SILENT_TAIL_MS = 30 * 60_000


@dataclass(frozen=True)
class Check:
    agent_id: str
    ms: int
    online: bool
    asn: int | None  # the network the check was uploaded from; None when unknown
    cc: str | None


@dataclass(frozen=True)
class Outage:
    kind: str  # OFFLINE or SILENT
    asn: int | None
    cc: str | None
    start_ms: int
    end_ms: int | None  # the first online check after it; None while it goes on
    last_online_ms: int | None  # the last online check before it, if known
    agents: tuple[str, ...]
    checks: int  # offline checks during it (0 for a silent outage)

    @property
    def first_online_ms(self) -> int | None:
        return self.end_ms


def agent_outages(checks: Sequence[Check], now_ms: int | None = None) -> list[Outage]:
    """One agent's outages, oldest first; ``checks`` are that agent's, sorted by time.
    ``now_ms`` enables the trailing silence (an agent not heard from since)."""
    out: list[Outage] = []
    if not checks:
        return out
    agent = (checks[0].agent_id,)
    spacings = [b.ms - a.ms for a, b in pairwise(checks)]
    limit = SILENT_FACTOR * statistics.median(spacings) if len(spacings) >= MIN_SPACINGS else None
    last_online: int | None = None
    run: list[Check] = []
    for index, check in enumerate(checks):
        if not check.online:
            run.append(check)
            continue
        if run:
            first = run[0]
            out.append(
                Outage(OFFLINE, first.asn, first.cc, first.ms, check.ms, last_online, agent,
                       len(run))
            )  # fmt: skip
            run = []
        elif index and limit is not None and check.ms - checks[index - 1].ms > limit:
            before = checks[index - 1]  # online too: an offline one would have made a run
            out.append(Outage(SILENT, before.asn, before.cc, before.ms, check.ms, before.ms,
                              agent, 0))  # fmt: skip
        last_online = check.ms
    if run:
        first = run[0]
        out.append(Outage(OFFLINE, first.asn, first.cc, first.ms, None, last_online, agent,
                          len(run)))  # fmt: skip
    elif now_ms is not None and limit is not None:
        last = checks[-1]
        if now_ms - last.ms > max(limit, SILENT_TAIL_MS):
            out.append(Outage(SILENT, last.asn, last.cc, last.ms, None, last.ms, agent, 0))
    return out


def merge(outages: Iterable[Outage]) -> list[Outage]:
    """Overlapping outages of one kind in one network as single events, newest first."""

    def network(o: Outage) -> tuple[str, int, str]:
        return o.kind, -1 if o.asn is None else o.asn, "" if o.cc is None else o.cc

    merged: list[Outage] = []
    for _, group in groupby(sorted(outages, key=network), key=network):
        current: Outage | None = None
        for o in sorted(group, key=lambda o: o.start_ms):
            if current is not None and (current.end_ms is None or o.start_ms <= current.end_ms):
                end = (
                    None
                    if o.end_ms is None or current.end_ms is None
                    else max(o.end_ms, current.end_ms)
                )
                current = Outage(
                    current.kind, current.asn, current.cc, current.start_ms, end,
                    current.last_online_ms, tuple(sorted({*current.agents, *o.agents})),
                    current.checks + o.checks,
                )  # fmt: skip
                continue
            if current is not None:
                merged.append(current)
            current = o
        if current is not None:
            merged.append(current)
    merged.sort(key=lambda o: (-o.start_ms, o.kind, network(o)))
    return merged


def find_outages(
    checks: Iterable[Check],
    *,
    now_ms: int | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[Outage]:
    """The outage events in ``checks`` (any agents, any order) that overlap [since, until),
    newest first. An agent whose checks reach past ``until`` is not judged silent now."""
    by_agent = sorted(checks, key=lambda c: (c.agent_id, c.ms))
    found: list[Outage] = []
    for _, group in groupby(by_agent, key=lambda c: c.agent_id):
        series = list(group)
        # A series cut at ``until`` (a check came later) says nothing about a silence now.
        ends = until_ms is None or series[-1].ms < until_ms
        found += agent_outages(series, now_ms if ends else None)
    return [
        o
        for o in merge(found)
        if (until_ms is None or o.start_ms < until_ms)
        and (since_ms is None or o.end_ms is None or o.end_ms > since_ms)
    ]

"""Collector incidents: what an incident is, and the thresholds that make one. Pure data.

An :class:`Incident` is one of :data:`KINDS`: ``blocking`` (a domain's blocking verdicts on
one or more networks crossed the thresholds), ``outage`` (agents on a network found
themselves offline, ``collector.outages``), and ``degraded``, which is reserved for the
degraded periods of the throttling issue and never produced yet. Each has a start, an end
(None while it goes on), its techniques, its networks and its counts; the agents appear
only as a count. docs/design/008-incidents.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "BLOCKING",
    "DEGRADED",
    "KINDS",
    "NOT_BLOCKING",
    "OUTAGE",
    "Incident",
    "IncidentNetwork",
]

Kind = Literal["blocking", "outage", "degraded"]
BLOCKING: Kind = "blocking"
OUTAGE: Kind = "outage"
# Reserved: a period of low benign goodput (the throttling issue). Nothing makes one yet.
DEGRADED: Kind = "degraded"
KINDS: tuple[Kind, ...] = (BLOCKING, OUTAGE, DEGRADED)

# Verdicts that are not a block (as the blocking matrix's dominant technique ignores them);
# ``offline`` also says nothing about the site, so it is left out of the shares too.
NOT_BLOCKING = frozenset({"ok", "down", "offline", "inconclusive"})
UNCOUNTED = frozenset({"offline"})


@dataclass(frozen=True)
class IncidentNetwork:
    """One network's part in an incident. ``counts``: measurements by verdict over the
    incident's windows on it (blocking), or ``{"offline": checks}`` (outage)."""

    asn: int  # 0: unknown
    cc: str | None
    start_ms: int
    end_ms: int | None
    counts: Mapping[str, int]
    agents: int

    def as_json(self) -> dict[str, Any]:
        return {
            "asn": self.asn,
            "cc": self.cc,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "counts": dict(self.counts),
            "agents": self.agents,
        }


@dataclass(frozen=True)
class Incident:
    kind: Kind
    domain: str | None  # None for an outage: every site on the network
    start_ms: int  # the start of the first window (or check) that showed it
    end_ms: int | None  # the end of the last one, once later data showed it over; None: ongoing
    last_seen_ms: int  # the end of the last window that showed it (outage: its end, or the
    # last offline check)
    techniques: tuple[str, ...]  # verdict names, most frequent first (outage: "offline")
    networks: tuple[IncidentNetwork, ...]
    counts: Mapping[str, int] = field(default_factory=dict)
    agents: int = 0  # distinct agents that showed it, on all its networks
    start_clipped: bool = False  # it showed in the first window looked at: it may be older

    @property
    def ongoing(self) -> bool:
        return self.end_ms is None

    @property
    def measurements(self) -> int:
        return sum(self.counts.values())

    @property
    def blocking(self) -> int:
        return sum(n for verdict, n in self.counts.items() if verdict not in NOT_BLOCKING)

    @property
    def asns(self) -> tuple[int, ...]:
        return tuple(network.asn for network in self.networks)

    def as_json(self) -> dict[str, Any]:
        """The public view: networks and counts, the agents only as a number."""
        return {
            "kind": self.kind,
            "domain": self.domain,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "ongoing": self.ongoing,
            "last_seen_ms": self.last_seen_ms,
            "start_clipped": self.start_clipped,
            "techniques": list(self.techniques),
            "networks": [network.as_json() for network in self.networks],
            "counts": dict(self.counts),
            "measurements": self.measurements,
            "blocking": self.blocking,
            "agents": self.agents,
        }

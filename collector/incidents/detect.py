"""Collector incidents: :func:`detect`, the incidents of a period from what is stored.

Blocking incidents from the rollups (``collector.incidents.read``, then the threshold
logic of ``collector.incidents.runs``); outage incidents from the agents' connectivity
checks (``collector.outages``, as ``/api/v1/outages`` finds them), kept when enough agents
and checks were offline. Blocking: the pure
logic never looks at the clock, so the same data and thresholds give the same incidents.
"""

from __future__ import annotations

from collections.abc import Sequence

from collector.incidents.model import BLOCKING, OUTAGE, Incident, IncidentNetwork, Kind
from collector.incidents.read import read_windows
from collector.incidents.runs import blocking_incidents
from collector.outages import OFFLINE, Outage, find_outages
from collector.storage import Storage
from collector.storage.schema import HOUR_MS, UNKNOWN_ASN
from collector.thresholds import Thresholds

__all__ = ["detect", "period"]


def period(since_ms: int, until_ms: int, t: Thresholds) -> tuple[int, int]:
    """The period looked at: from the start of the window holding ``since_ms`` to the end
    of the hour holding ``until_ms - 1`` (the rollups count whole hours)."""
    return since_ms - since_ms % t.window_ms, -(-until_ms // HOUR_MS) * HOUR_MS


def detect(
    storage: Storage,
    since_ms: int,
    until_ms: int,
    thresholds: Thresholds | None = None,
    *,
    domain: str | None = None,
    asn: int | None = None,
    kinds: tuple[Kind, ...] = (BLOCKING, OUTAGE),
    outages: Sequence[Outage] | None = None,
) -> list[Incident]:
    """The incidents overlapping [since_ms, until_ms), newest first; with ``domain``, that
    domain's blocking incidents only (an outage is every domain's); ``asn`` 0 is the
    unknown network. ``outages``: the outage events of the same period and network, when
    the caller has them already (``Storage.outages``), to spare reading the checks twice.
    Blocking; run it on a worker thread."""
    t = thresholds or Thresholds()
    found: list[Incident] = []
    if BLOCKING in kinds:
        lo, hi = period(since_ms, until_ms, t)
        windows = read_windows(storage, lo, hi, t, domain=domain, asn=asn)
        found += blocking_incidents(windows, t, first_ms=lo)
    if OUTAGE in kinds and domain is None:
        if outages is None:
            checks = storage.connectivity_checks(asn=asn, since_ms=since_ms, until_ms=until_ms)
            # No clock: silent outages (heartbeats missing up to now) are not incidents.
            outages = find_outages(checks, since_ms=since_ms, until_ms=until_ms)
        found += [_outage(o, until_ms) for o in outages if _counts(o, t)]
    found.sort(key=lambda i: (-i.start_ms, i.kind, i.domain or "", i.asns))
    return found


def _counts(outage: Outage, t: Thresholds) -> bool:
    return (
        outage.kind == OFFLINE
        and len(outage.agents) >= t.outage_min_agents
        and outage.checks >= t.outage_min_checks
    )


def _outage(outage: Outage, until_ms: int) -> Incident:
    network = IncidentNetwork(
        asn=UNKNOWN_ASN if outage.asn is None else outage.asn,
        cc=outage.cc,
        start_ms=outage.start_ms,
        end_ms=outage.end_ms,
        counts={OFFLINE: outage.checks},
        agents=len(outage.agents),
    )
    return Incident(
        kind=OUTAGE,
        domain=None,
        start_ms=outage.start_ms,
        end_ms=outage.end_ms,
        last_seen_ms=outage.end_ms if outage.end_ms is not None else max(until_ms, outage.start_ms),
        techniques=(OFFLINE,),
        networks=(network,),
        counts={OFFLINE: outage.checks},
        agents=len(outage.agents),
    )

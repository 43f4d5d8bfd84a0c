"""Collector reports: everything a report says, gathered from storage for one query.

The period is widened to whole hours (the rollups count hours), and every figure is for
that period: the counts and the timeline from the rollups (``Storage.blocking`` and
``timeline``), which for whole hours are exactly the measurements' counts, so they equal
the summary of the evidence bundle for the same query (whose id the report quotes); the
incidents by ``collector.incidents.detect``; one stored measurement per technique, newest
first, explained in words (``collector.explain``). Agents appear only as a count.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select

from agent.model.measurement import Target, TargetError
from agent.wire.json import measurement_json
from agent.wire.record import WireError, decode_measurement
from collector.evidence.bundle import bundle_id
from collector.evidence.query import EvidenceQuery
from collector.explain import explain, technique
from collector.incidents import BLOCKING, OUTAGE, Incident, detect
from collector.incidents.model import NOT_BLOCKING, Kind
from collector.storage import Storage
from collector.storage.engine import READ_ONLY
from collector.storage.queries import MeasurementFilter, StoredMeasurement
from collector.storage.schema import DAY_MS, HOUR_MS, UNKNOWN_ASN, measurements
from collector.thresholds import Thresholds
from collector.traces import shown

__all__ = ["Example", "NetworkRow", "ReportData", "gather", "whole_hours"]

# Up to this long a period, the timeline has a bar per hour; beyond, per day.
_HOURLY_UP_TO_MS = 4 * DAY_MS
_MAX_DOMAINS = 50  # rows of the table of domains, in a report for every domain


@dataclass(frozen=True)
class NetworkRow:
    asn: int  # 0: unknown
    cc: str | None
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def blocking(self) -> int:
        return sum(n for v, n in self.counts.items() if v not in NOT_BLOCKING)


@dataclass(frozen=True)
class Example:
    """A stored measurement that shows a technique, and its verdict in words."""

    verdict: str
    words: str  # the technique in a few words
    explanation: str
    measurement_id: str
    measured_ms: int
    asn: int
    cc: str | None


@dataclass(frozen=True)
class ReportData:
    query: EvidenceQuery  # widened to whole hours
    thresholds: Thresholds
    counts: dict[str, int]  # by verdict
    networks: list[NetworkRow]
    domains: list[tuple[str, int, int]]  # for every domain: the most blocked, blocking, total
    agents: int
    bucket_ms: int
    series: list[tuple[int, dict[str, int]]]
    incidents: list[Incident]  # blocking
    outages: list[Incident]
    examples: list[Example]
    bundle_id: str

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def blocking(self) -> int:
        return sum(n for v, n in self.counts.items() if v not in NOT_BLOCKING)

    @property
    def techniques(self) -> list[str]:
        """The blocking verdicts seen, most frequent first."""
        seen = [(n, v) for v, n in self.counts.items() if v not in NOT_BLOCKING and n]
        return [v for _, v in sorted(seen, key=lambda nv: (-nv[0], nv[1]))]


def whole_hours(query: EvidenceQuery) -> EvidenceQuery:
    """The query widened to whole hours, the period a report and its bundle cover."""
    since = query.since_ms - query.since_ms % HOUR_MS
    until = -(-query.until_ms // HOUR_MS) * HOUR_MS
    return EvidenceQuery(query.domain, query.asns, since, until)


def gather(storage: Storage, query: EvidenceQuery, thresholds: Thresholds) -> ReportData:
    """What the report for ``query`` says; blocks (run it on a worker thread)."""
    q = whole_hours(query)
    networks, domains = _counted(storage, q)
    counts: Counter[str] = Counter()
    for network in networks:
        counts.update(network.counts)
    bucket = HOUR_MS if q.until_ms - q.since_ms <= _HOURLY_UP_TO_MS else DAY_MS
    return ReportData(
        query=q,
        thresholds=thresholds,
        counts=dict(sorted(counts.items())),
        networks=networks,
        domains=domains,
        agents=_agents(storage, q),
        bucket_ms=bucket,
        series=_series(storage, q, bucket),
        incidents=_incidents(storage, q, thresholds, BLOCKING),
        outages=_incidents(storage, q, thresholds, OUTAGE),
        examples=[e for v in _blocking_verdicts(counts) if (e := _example(storage, q, v))],
        bundle_id=bundle_id(storage, q),
    )


def _networks_of(q: EvidenceQuery) -> Iterable[int | None]:
    return q.asns or (None,)


def _counted(
    storage: Storage, q: EvidenceQuery
) -> tuple[list[NetworkRow], list[tuple[str, int, int]]]:
    by_network: dict[int, Counter[str]] = {}
    ccs: dict[int, set[str]] = {}
    by_domain: dict[str, Counter[str]] = {}
    for asn in _networks_of(q):
        for row in storage.blocking(
            asn=asn, domain=q.domain, since_ms=q.since_ms, until_ms=q.until_ms
        ):
            by_network.setdefault(row.asn, Counter()).update(row.counts)
            ccs.setdefault(row.asn, set()).add(row.cc)
            by_domain.setdefault(row.domain, Counter()).update(row.counts)
    networks = [
        NetworkRow(asn, min((cc for cc in ccs[asn] if cc), default=None), dict(sorted(c.items())))
        for asn, c in sorted(by_network.items())
    ]
    domains: list[tuple[str, int, int]] = []
    if q.domain is None:
        ranked = sorted(by_domain.items(), key=lambda dc: (-_blocked(dc[1]), dc[0]))
        domains = [(d, _blocked(c), c.total()) for d, c in ranked[:_MAX_DOMAINS] if _blocked(c)]
    return networks, domains


def _blocked(counts: Counter[str]) -> int:
    return sum(n for v, n in counts.items() if v not in NOT_BLOCKING)


def _blocking_verdicts(counts: Counter[str]) -> list[str]:
    return [v for v, n in sorted(counts.items(), key=lambda vn: (-vn[1], vn[0]))
            if v not in NOT_BLOCKING and n]  # fmt: skip


def _series(storage: Storage, q: EvidenceQuery, bucket: int) -> list[tuple[int, dict[str, int]]]:
    summed: dict[int, Counter[str]] = {}
    for asn in _networks_of(q):
        points = storage.timeline(
            domain=q.domain, asn=asn, bucket_ms=bucket, since_ms=q.since_ms, until_ms=q.until_ms
        )
        for start, counts in points:
            summed.setdefault(start, Counter()).update(counts)
    return [(start, dict(sorted(c.items()))) for start, c in sorted(summed.items())]


def _agents(storage: Storage, q: EvidenceQuery) -> int:
    """How many agents made the query's measurements (a count: never who)."""
    m = measurements.c
    where = [m.measured_ms >= q.since_ms, m.measured_ms < q.until_ms]
    if q.domain is not None:
        where.append(m.domain == q.domain)
    if q.asns:
        known = [asn for asn in q.asns if asn != UNKNOWN_ASN]
        networks = [m.asn.in_(known)]
        if UNKNOWN_ASN in q.asns:
            networks.append(m.asn.is_(None))
        where.append(or_(*networks))
    with storage.engine.connect() as conn:
        conn = conn.execution_options(**{READ_ONLY: True})
        counted = select(func.count(m.agent_id.distinct())).where(*where)
        return int(conn.execute(counted).scalar_one())


def _incidents(storage: Storage, q: EvidenceQuery, t: Thresholds, kind: Kind) -> list[Incident]:
    """The incidents of that kind in the period on the query's networks: a domain's blocking
    incidents, or the networks' outages (which explain its ``offline`` results)."""
    one = q.asns[0] if len(q.asns) == 1 else None
    domain = q.domain if kind == BLOCKING else None
    found = detect(storage, q.since_ms, q.until_ms, t, domain=domain, asn=one, kinds=(kind,))
    if not q.asns:
        return found
    return [i for i in found if set(i.asns) & set(q.asns)]


def _example(storage: Storage, q: EvidenceQuery, verdict: str) -> Example | None:
    newest: StoredMeasurement | None = None
    for asn in _networks_of(q):
        where = MeasurementFilter(
            domain=q.domain, asn=asn, verdict=verdict, since_ms=q.since_ms, until_ms=q.until_ms
        )
        rows, _ = storage.measurements_page(where, limit=1)
        if rows and (newest is None or rows[0].measured_ms > newest.measured_ms):
            newest = rows[0]
    if newest is None:
        return None
    return Example(
        verdict=verdict,
        words=technique(verdict),
        explanation=explain(_as_json(newest)),
        measurement_id=newest.id,
        measured_ms=newest.measured_ms,
        asn=UNKNOWN_ASN if newest.asn is None else newest.asn,
        cc=newest.cc,
    )


def _as_json(row: StoredMeasurement) -> dict[str, Any]:
    """The measurement as the API serves it, with the stored verdict. Evidence recorded for
    another verdict (the record predates a reclassification) would explain the wrong one,
    so it is left out then."""
    try:
        m = decode_measurement(row.record)
        # Through JSON, as the API serves it: explain() reads plain values.
        obj: dict[str, Any] = json.loads(measurement_json(Target.parse(m.url), m))
    except (WireError, TargetError):
        return {"verdict": row.verdict}
    if obj.get("verdict") != row.verdict:
        obj["verdict"], obj["evidence"] = row.verdict, {}
    # A public page: a trace's routers that could point at the agent are hidden. No AS
    # lookup, so that the command writes the bytes the route serves.
    return shown(obj, operator=False)

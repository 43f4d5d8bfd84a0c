"""Collector dashboard: what each page shows, built from the storage's answers. Pure.

The matrix pivots the blocking matrix's rows (``collector.storage.blocking``, read from the
rollups) into domains by networks; the overview sums the same rows; outage events become the
rows of an outage chart. Nothing here reads the database or names an agent: the handlers
fetch, these shape, the templates print.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from agent.api.paths import REPORT_PATH
from collector.dashboard.charts import Interval
from collector.incidents import BLOCKING, OUTAGE, Incident
from collector.outages import Outage
from collector.storage.blocking import NOT_BLOCKING, BlockingRow
from collector.storage.schema import DAY_MS, HOUR_MS

__all__ = [
    "DAYS",
    "PER_PAGE",
    "Cell",
    "MatrixPage",
    "Totals",
    "Window",
    "incident_view",
    "matrix_page",
    "network_label",
    "outage_rows",
    "totals",
    "window",
]

DAYS = (1, 7, 30, 90)  # the periods a page offers
PER_PAGE = 100  # domains per matrix page: a phone still loads it quickly
TOP = 10  # domains in the overview's "most blocked" chart

Network = tuple[int, str]  # (asn, cc); 0 and "" when unknown, as in the rollups


@dataclass(frozen=True)
class Window:
    days: int
    since_ms: int
    until_ms: int
    bucket_ms: int  # the timeline's: hours up to a week, days beyond


def network_label(asn: int | None, cc: str | None = None) -> str:
    """How a network is named: AS64500 PK; 0 or None is one the collector could not look
    up (it has no GeoIP database, or the address is in none)."""
    name = "unknown network" if not asn else f"AS{asn}"
    return f"{name} {cc}" if cc else name


def window(days: int, now_ms: int) -> Window:
    bucket = HOUR_MS if days <= 7 else DAY_MS
    # Up to the end of the current bucket, so the newest bar is on the axis.
    until = now_ms - now_ms % bucket + bucket
    return Window(days, until - days * DAY_MS, until, bucket)


@dataclass(frozen=True)
class Cell:
    """One (domain, network) of the matrix: the verdict it is coloured by, its count."""

    verdict: str  # the dominant blocking verdict, else the most frequent one
    count: int
    total: int
    blocked: bool
    detail: str  # every verdict's count, for the cell's tooltip and screen readers
    most: str  # the most frequent verdict, block or not
    most_count: int

    @property
    def minor(self) -> bool:
        """A block seen in under half the measurements (a site mostly reachable there, or a
        few failures around an outage): marked, not filled, so that it does not read as a
        block."""
        return self.blocked and self.count * 2 < self.total

    @property
    def label(self) -> str:
        """The cell's text: "tls.reset 12/15"; for a minor block the most frequent verdict
        first, "ok 3/5, dns.timeout 1"."""
        if not self.minor:
            return f"{self.verdict} {self.count}/{self.total}"
        return f"{self.most} {self.most_count}/{self.total}, {self.verdict} {self.count}"


@dataclass(frozen=True)
class MatrixRow:
    domain: str
    cells: list[Cell | None]  # one per network of the page, None where never measured


@dataclass(frozen=True)
class MatrixPage:
    networks: list[Network]
    rows: list[MatrixRow]
    domains: int  # matching the filter, on every page
    page: int
    pages: int
    techniques: list[tuple[str, int]]  # blocking verdicts on this page, by measurements


def _cell(row: BlockingRow) -> Cell:
    counts = row.counts
    most = max(sorted(counts), key=counts.__getitem__)  # ties: the name sorting first
    verdict = row.dominant or most
    detail = ", ".join(f"{v} {n}" for v, n in counts.items())
    blocked = row.dominant is not None
    return Cell(verdict, counts[verdict], row.total, blocked, detail, most, counts[most])


def matrix_page(rows: Sequence[BlockingRow], *, blocked_only: bool, page: int) -> MatrixPage:
    """``rows`` (sorted by domain, then network) as one page of the pivot: the domains with
    a blocking verdict somewhere (or all), ``PER_PAGE`` of them, and the networks they were
    measured in. ``page`` counts from 1; past the last it is the last."""
    by_domain: dict[str, list[BlockingRow]] = {}
    for row in rows:
        by_domain.setdefault(row.domain, []).append(row)
    domains = [
        d for d, cells in by_domain.items() if not blocked_only or any(c.dominant for c in cells)
    ]
    pages = max(1, -(-len(domains) // PER_PAGE))
    page = min(max(1, page), pages)
    shown = domains[(page - 1) * PER_PAGE : page * PER_PAGE]
    networks = sorted({(r.asn, r.cc) for d in shown for r in by_domain[d]})
    column = {network: i for i, network in enumerate(networks)}
    out: list[MatrixRow] = []
    techniques: dict[str, int] = {}
    for domain in shown:
        cells: list[Cell | None] = [None] * len(networks)
        for r in by_domain[domain]:
            cells[column[(r.asn, r.cc)]] = _cell(r)
            for verdict, n in r.counts.items():
                if verdict not in NOT_BLOCKING:
                    techniques[verdict] = techniques.get(verdict, 0) + n
        out.append(MatrixRow(domain, cells))
    ranked = sorted(techniques.items(), key=lambda item: (-item[1], item[0]))
    return MatrixPage(networks, out, len(domains), page, pages, ranked)


@dataclass(frozen=True)
class Totals:
    measurements: int
    blocking: int  # measurements with a blocking verdict
    domains: int
    networks: int
    blocked_pairs: int  # (domain, network) cells whose dominant verdict is a block
    techniques: list[tuple[str, int]]  # blocking verdicts by measurements, most first
    top_domains: list[tuple[str, int]]  # domains by blocking measurements, most first


def totals(rows: Iterable[BlockingRow]) -> Totals:
    measurements = blocking = blocked_pairs = 0
    domains: set[str] = set()
    networks: set[Network] = set()
    techniques: dict[str, int] = {}
    per_domain: dict[str, int] = {}
    for row in rows:
        measurements += row.total
        domains.add(row.domain)
        networks.add((row.asn, row.cc))
        if row.dominant is None:
            continue
        blocked_pairs += 1
        for verdict, n in row.counts.items():
            if verdict not in NOT_BLOCKING:
                blocking += n
                techniques[verdict] = techniques.get(verdict, 0) + n
                per_domain[row.domain] = per_domain.get(row.domain, 0) + n

    def ranked(counts: dict[str, int], limit: int | None = None) -> list[tuple[str, int]]:
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]

    return Totals(
        measurements, blocking, len(domains), len(networks), blocked_pairs,
        ranked(techniques), ranked(per_domain, TOP),
    )  # fmt: skip


def outage_rows(
    outages: Iterable[Outage], label: Callable[[Outage], Iterable[str]]
) -> list[tuple[str, list[Interval]]]:
    """The outage chart's rows: each outage's interval under each of its labels (its network;
    for the operator, each of its agents), the rows sorted by label."""
    rows: dict[str, list[Interval]] = {}
    for o in outages:
        for name in label(o):
            rows.setdefault(name, []).append((o.start_ms, o.end_ms, o.kind))
    return sorted(rows.items())


@dataclass(frozen=True)
class IncidentView:
    kind: str
    summary: str  # one line in plain words
    detail: str  # the counts
    start_ms: int
    end_ms: int | None
    report: str  # the report's path and query (the evidence bundle's query too)


def _listed(items: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def incident_view(incident: Incident, now_ms: int) -> IncidentView:
    """An incident as the overview lists it, with the query of its report."""
    networks = _listed([network_label(n.asn, n.cc) for n in incident.networks])
    if incident.kind == BLOCKING:
        what = f"{incident.domain} blocked ({_listed(list(incident.techniques))}) on {networks}"
        detail = f"{incident.blocking} of {incident.measurements} measurements show the block"
    elif incident.kind == OUTAGE:
        what = f"Outage on {networks}"
        detail = f"{incident.counts.get('offline', 0)} offline connectivity checks"
    else:
        what, detail = f"Degraded on {networks}", f"{incident.measurements} measurements"
    agents = f"{incident.agents} agent{'s' if incident.agents != 1 else ''}"
    query: dict[str, object] = {} if incident.domain is None else {"domain": incident.domain}
    query |= {"asn": [n.asn for n in incident.networks], "since": incident.start_ms}
    query["until"] = incident.end_ms or now_ms
    report = f"{REPORT_PATH}?{urlencode(query, doseq=True)}"
    return IncidentView(
        incident.kind, what, f"{detail}, {agents}", incident.start_ms, incident.end_ms, report
    )

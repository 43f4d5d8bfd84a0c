"""Collector reports: the summary sentence, and how a report writes times and networks. Pure.

The sentence a journalist would quote: what was blocked, where, since when, how, and on
how many measurements and agents it rests, e.g. "x.com was blocked on AS17557 (PK) from
Sat 4 May 2024 17:00 UTC and still was at the end of the period, by TLS handshakes reset
(tls.reset): 412 of the 480 measurements made by 3 agents showed it."
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from collector.explain import technique
from collector.incidents import Incident
from collector.reports.data import NetworkRow, ReportData
from collector.storage.schema import UNKNOWN_ASN

__all__ = ["network_label", "networks_label", "summary", "when"]


def when(ms: int | None) -> str:
    """A time as people read it, always in UTC: "Sat 4 May 2024 17:00 UTC"."""
    if ms is None:
        return "ongoing"
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return f"{moment:%a} {moment.day} {moment:%b %Y %H:%M} UTC"


def network_label(asn: int, cc: str | None = None) -> str:
    name = "an unknown network" if asn == UNKNOWN_ASN else f"AS{asn}"
    return f"{name} ({cc})" if cc else name


def _listed(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + f" and {items[-1]}"


def networks_label(data: ReportData) -> str:
    if data.query.asns:
        known = {n.asn: n.cc for n in data.networks}
        return _listed([network_label(asn, known.get(asn)) for asn in data.query.asns])
    return "every network"


def _techniques(verdicts: Iterable[str]) -> str:
    return _listed([f"{technique(v)} ({v})" for v in verdicts])


def _of(n: int, total: int, agents: int) -> str:
    made = f"made by {agents} agent{'s' if agents != 1 else ''}"
    return f"{n} of the {total} measurement{'s' if total != 1 else ''} {made}"


def _incident_networks(incidents: Sequence[Incident], rows: Sequence[NetworkRow]) -> str:
    ccs = {row.asn: row.cc for row in rows}
    asns = sorted({n.asn for i in incidents for n in i.networks})
    return _listed([network_label(asn, ccs.get(asn)) for asn in asns])


def summary(data: ReportData) -> str:
    """One sentence saying what the report shows."""
    q = data.query
    subject = q.domain or "The measured domains"
    where = networks_label(data)
    period = f"between {when(q.since_ms)} and {when(q.until_ms)}"
    if not data.total:
        return f"No measurements of {q.domain or 'any domain'} on {where} {period}."
    if data.incidents:
        return _blocked(data, subject)
    if data.blocking:
        return (
            f"{subject} showed some blocking on {where} {period}, too little to make an "
            f"incident by the thresholds below: {_of(data.blocking, data.total, data.agents)} "
            f"showed {_techniques(data.techniques)}."
        )
    return (
        f"{subject} {'was' if q.domain else 'were'} reachable on {where} {period}: none of "
        f"{data.total} measurement{'s' if data.total != 1 else ''} showed blocking."
    )


def _blocked(data: ReportData, subject: str) -> str:
    incidents = sorted(data.incidents, key=lambda i: i.start_ms)
    where = _incident_networks(incidents, data.networks)
    verb = "was" if data.query.domain else "were"
    first, last = incidents[0], incidents[-1]
    if len(incidents) == 1:
        span = f"from {when(first.start_ms)}"
    else:
        span = f"in {len(incidents)} incidents, the first from {when(first.start_ms)}"
    if last.ongoing:
        span += " and still was at the end of the period"
    else:
        span += f" to {when(last.end_ms)}"
    shown = _of(data.blocking, data.total, data.agents)
    return (
        f"{subject} {verb} blocked on {where} {span}, by {_techniques(data.techniques)}: "
        f"{shown} showed it."
    )

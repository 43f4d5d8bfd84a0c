"""Collector reports: the HTML report for a (domain, networks, period) query or an incident.

``report_html(storage, query, thresholds)`` gathers what the report says (``data``), writes
its summary sentence (``summary``) and renders the page (``render``): one renderer for
``GET /report`` and ``netsonde-collector report``, so both give the same bytes.
"""

from __future__ import annotations

from collector.evidence.query import EvidenceQuery
from collector.incidents import Incident
from collector.reports.data import ReportData, gather, whole_hours
from collector.reports.render import REPORT_HEADERS, render
from collector.storage import Storage
from collector.thresholds import Thresholds

__all__ = [
    "LAST_MS",
    "REPORT_HEADERS",
    "ReportData",
    "gather",
    "incident_query",
    "render",
    "report_html",
    "report_query",
    "whole_hours",
]


# A report writes its times as dates: none after the last whole hour of the year 9999.
LAST_MS = 253_402_297_200_000


def report_query(query: EvidenceQuery) -> EvidenceQuery:
    """``query`` if a report can be made for it; ValueError naming what is wrong."""
    if query.until_ms > LAST_MS:
        raise ValueError("until: a report covers times up to the year 9999")
    return query


def report_html(storage: Storage, query: EvidenceQuery, thresholds: Thresholds) -> bytes:
    """The report for ``query`` as UTF-8 HTML; blocks (run it on a worker thread).
    ValueError for a query :func:`report_query` refuses."""
    return render(gather(storage, report_query(query), thresholds)).encode("utf-8")


def incident_query(incident: Incident) -> EvidenceQuery:
    """The query a report on ``incident`` is for: its domain and networks, from its start
    to its end (an ongoing one: to the end of the last window that showed it)."""
    end = incident.end_ms if incident.end_ms is not None else incident.last_seen_ms
    return EvidenceQuery(incident.domain, incident.asns, incident.start_ms, end)

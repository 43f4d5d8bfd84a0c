"""Collector web layer: incidents and reports, public, as a route table.

``GET /api/v1/incidents?since=&until=&domain=&asn=``: the incidents of a period
(``collector.incidents.detect`` with the thresholds of ``serve``), newest first. ``GET
/report?domain=&asn=&since=&until=``: the HTML report for a query (``collector.reports``),
the same bytes ``netsonde-collector report`` writes. Both public: networks (ASN and
country), counts, and agents only as a number (docs/threat-model.md).

Both read in proportion to the period asked for (a report reads every measurement of its
query, to name its evidence bundle), so the public may ask for at most
:data:`MAX_PUBLIC_PERIOD_MS` at a time, and at most :data:`MAX_REPORTS` reports are built at
once (others wait), leaving the worker threads to the other queries. The operator's token
lifts the period's bound; ``netsonde-collector report`` has none.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from agent.api.paths import INCIDENTS_PATH, REPORT_PATH
from collector.incidents import detect
from collector.ingest.accept import now_ms
from collector.reports import REPORT_HEADERS, report_html, report_query
from collector.storage.schema import DAY_MS
from collector.web.evidence import evidence_query
from collector.web.keys import REPORTS, SETTINGS, STORAGE
from collector.web.operator import is_operator
from collector.web.params import WINDOW, BadParam, check_query, parse_filters

routes = web.RouteTableDef()

DEFAULT_PERIOD_MS = 7 * DAY_MS
MAX_PUBLIC_PERIOD_MS = 92 * DAY_MS  # a quarter
MAX_REPORTS = 2
INCIDENT_PARAMS = WINDOW - {"cc"}


def install(app: web.Application) -> None:
    """The incident and report routes, and the bound on reports built at once."""
    app[REPORTS] = asyncio.Semaphore(MAX_REPORTS)
    app.router.add_routes(routes)


async def _check_period(request: web.Request, since_ms: int, until_ms: int) -> None:
    if until_ms - since_ms > MAX_PUBLIC_PERIOD_MS and not await is_operator(request):
        days = MAX_PUBLIC_PERIOD_MS // DAY_MS
        raise BadParam(
            f"a period of at most {days} days, unless with the operator's token; "
            "ask for several, or run netsonde-collector report"
        )


@routes.get(INCIDENTS_PATH, allow_head=False)
async def incidents(request: web.Request) -> web.Response:
    filters = parse_filters(check_query(request.query, INCIDENT_PARAMS))
    until = filters.pop("until_ms", None)
    since = filters.pop("since_ms", None)
    if until is None:
        until = max(now_ms(), (since or 0) + 1)
    if since is None:
        since = until - DEFAULT_PERIOD_MS
    if since >= until:
        raise BadParam("'since' must be before 'until'")
    await _check_period(request, since, until)
    thresholds = request.app[SETTINGS].incidents
    storage = request.app[STORAGE]
    found = await asyncio.to_thread(detect, storage, since, until, thresholds, **filters)
    return web.json_response(
        {
            "since_ms": since,
            "until_ms": until,
            "thresholds": _thresholds_view(request),
            "incidents": [incident.as_json() for incident in found],
        }
    )


def _thresholds_view(request: web.Request) -> dict[str, Any]:
    t = request.app[SETTINGS].incidents
    return {
        "window_hours": t.window_hours,
        "min_blocking": t.min_blocking,
        "min_share": t.min_share,
        "min_agents": t.min_agents,
        "outage_min_agents": t.outage_min_agents,
        "outage_min_checks": t.outage_min_checks,
    }


@routes.get(REPORT_PATH, allow_head=False)
async def report(request: web.Request) -> web.Response:
    """``domain``, ``asn`` (repeatable), ``since`` and ``until``, as the evidence bundle of
    the same query takes them."""
    try:
        query = report_query(evidence_query(request.query))
    except ValueError as exc:
        raise BadParam(str(exc)) from None
    await _check_period(request, query.since_ms, query.until_ms)
    storage, thresholds = request.app[STORAGE], request.app[SETTINGS].incidents
    async with request.app[REPORTS]:
        body = await asyncio.to_thread(report_html, storage, query, thresholds)
    return web.Response(
        body=body, content_type="text/html", charset="utf-8", headers=REPORT_HEADERS
    )

"""Collector dashboard: the public pages, as a route table.

The overview (``/``), the matrix, a timeline per domain or network, the outages, and one
measurement explained. Public: every figure is per network (ASN and country) or summed,
as in the query API; no agent is named, and no time shows when an agent uploaded. The same
page rendered for the operator (``collector.dashboard.session``) adds which agent measured
a measurement. Handlers are thin: the storage runs on a worker thread, the views shape its
answers (``collector.dashboard.views``), a template prints them (``collector.dashboard.render``).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from agent.api.paths import BLOCKING_PATH, COLLECTOR_KEY_PATH, INCIDENTS_PATH, REPORT_PATH
from agent.api.paths import TIMELINE_PATH as TIMELINE_API
from agent.model.measurement import Target, TargetError
from agent.wire.json import measurement_json
from agent.wire.record import WireError, decode_measurement
from collector.dashboard import charts, paths, session
from collector.dashboard.overview import read_overview
from collector.dashboard.params import read_params
from collector.dashboard.render import network_label, render
from collector.dashboard.views import (
    DAYS,
    IncidentView,
    Window,
    incident_view,
    matrix_page,
    outage_rows,
    window,
)
from collector.errors import ApiError
from collector.evidence.key import key_fingerprint, public_key_text
from collector.explain import explain
from collector.incidents import OUTAGE, Incident
from collector.ingest.accept import now_ms
from collector.storage.dashboard import measurement_by_id
from collector.storage.queries import MeasurementFilter, StoredMeasurement
from collector.traces import HopRow, hop_rows, shown
from collector.web.keys import COLLECTOR_KEY, ENRICHER, SETTINGS, STORAGE

__all__ = ["common", "page", "routes"]

routes = web.RouteTableDef()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RECENT = 20  # measurements listed on a timeline page
MAX_INCIDENTS = 30  # listed on the overview; the API has them all
DOMAIN_COLOUR = "#8b1a1a"


def page(handler: Handler) -> Handler:
    """A refused request as an HTML page (with the API's status and message), not JSON."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            context = {"operator": False, "ended": False, "active": "", "paths": paths}
            context |= {"title": "Error", "status": exc.status, "message": str(exc)}
            return await render("error.html", context, status=exc.status, private=True)

    return wrapped


def common(who: session.Viewer, active: str, title: str) -> dict[str, Any]:
    return {"operator": who.operator, "ended": who.ended, "active": active, "title": title,
            "paths": paths, "days_choices": DAYS}  # fmt: skip


async def respond(who: session.Viewer, template: str, context: dict[str, Any]) -> web.Response:
    response = await render(template, context, private=who.operator or who.ended)
    if who.ended:
        session.log_out(response)
    return response


@routes.get(paths.HOME_PATH, allow_head=False)
@page
async def overview(request: web.Request) -> web.Response:
    params = read_params(request.query, frozenset({"days"}))
    who = await session.viewer(request)
    now = now_ms()
    w = window(params["days"], now)
    o = await read_overview(request.app[STORAGE], w, now, request.app[SETTINGS].incidents)
    found, outages = o.totals, o.outages
    key = request.app[COLLECTOR_KEY]
    span = _span(w.days)
    context = common(who, "overview", "Overview") | {
        "window": w, "span": span, "totals": found, "online": o.online, "enrolled": o.enrolled,
        "outages": outages, "ongoing": [o for o in outages if o.end_ms is None],
        "public_key": public_key_text(key), "key_fingerprint": key_fingerprint(key),
        "key_api": COLLECTOR_KEY_PATH, "api": {"blocking": BLOCKING_PATH},
        "timeline_chart": charts.timeline_svg(
            o.series, bucket_ms=w.bucket_ms, since_ms=w.since_ms, until_ms=w.until_ms,
            title=f"Measurements by verdict, {span}", chart_id="overview-timeline"),
        "technique_chart": charts.bar_svg(
            found.techniques, title=f"Blocking measurements by technique, {span}",
            chart_id="techniques"),
        "domain_chart": charts.bar_svg(
            found.top_domains, title=f"Most blocked domains, {span}", chart_id="top-domains",
            colours=dict.fromkeys((d for d, _ in found.top_domains), DOMAIN_COLOUR)),
        "outage_chart": _outage_chart(outages, o.recent_since_ms, w.until_ms, _span(o.recent_days)),
        "incidents": _listed_incidents(o.incidents, now), "incident_count": len(o.incidents),
        "incidents_api": INCIDENTS_PATH, "recent_days": o.recent_days,
    }  # fmt: skip
    return await respond(who, "overview.html", context)


def _span(days: int) -> str:
    return f"last {days} day{'s' if days > 1 else ''}"


def _report(filters: dict[str, Any], w: Window) -> str:
    """The report (``collector.reports``) on a timeline page's subject and period."""
    query = {k: filters[k] for k in ("domain", "asn") if k in filters}
    return f"{REPORT_PATH}?{urlencode(query | {'since': w.since_ms, 'until': w.until_ms})}"


def _listed_incidents(found: list[Incident], now: int) -> list[IncidentView]:
    """Outages first (they stop every site), then the ongoing incidents, then those that
    ended, newest first; at most MAX_INCIDENTS."""
    ordered = sorted(
        found, key=lambda i: (i.kind != OUTAGE, not i.ongoing, -(i.end_ms or now), -i.start_ms)
    )
    return [incident_view(i, now) for i in ordered[:MAX_INCIDENTS]]


def _host(url: object) -> str | None:
    if not isinstance(url, str):
        return None
    try:
        return Target.parse(url).host
    except (TargetError, ValueError):
        return None


def _listed(m: StoredMeasurement) -> dict[str, Any]:
    """A stored measurement as a timeline page lists it: its URL comes from the record."""
    try:
        url = decode_measurement(m.record).url
    except WireError:
        url = "(unreadable record)"
    return {"id": m.id, "measured_ms": m.measured_ms, "asn": m.asn, "cc": m.cc,
            "verdict": m.verdict, "url": url}  # fmt: skip


def _outage_chart(outages: Any, since_ms: int, until_ms: int, span: str) -> Any:
    rows = outage_rows(outages, lambda o: [network_label(o.asn, o.cc)])
    return charts.outage_svg(
        rows, since_ms=since_ms, until_ms=until_ms, title=f"Outages per network, {span}"
    )


@routes.get(paths.MATRIX_PATH, allow_head=False)
@page
async def matrix(request: web.Request) -> web.Response:
    params = read_params(request.query, frozenset({"days", "page", "show", "cc", "asn"}))
    who = await session.viewer(request)
    w = window(params["days"], now_ms())
    storage = request.app[STORAGE]
    filters = {k: params[k] for k in ("cc", "asn") if k in params}

    def read() -> Any:
        rows = storage.blocking(since_ms=w.since_ms, until_ms=w.until_ms, **filters)
        return matrix_page(rows, blocked_only=params["blocked_only"], page=params["page"])

    found = await asyncio.to_thread(read)
    context = common(who, "matrix", "Blocking matrix") | {
        "window": w, "matrix": found, "show": "blocked" if params["blocked_only"] else "all",
        "filters": filters, "api": BLOCKING_PATH,
    }  # fmt: skip
    return await respond(who, "matrix.html", context)


@routes.get(paths.TIMELINE_PATH, allow_head=False)
@page
async def timeline(request: web.Request) -> web.Response:
    params = read_params(request.query, frozenset({"days", "domain", "asn", "cc"}))
    if "domain" not in params and "asn" not in params:
        raise ApiError(400, "a timeline is for a 'domain' or a network ('asn')")
    who = await session.viewer(request)
    w = window(params["days"], now_ms())
    storage = request.app[STORAGE]
    filters: dict[str, Any] = {k: params[k] for k in ("domain", "asn", "cc") if k in params}
    subject = filters.get("domain") or network_label(filters.get("asn"), filters.get("cc"))
    if "domain" in filters and "asn" in filters:
        subject = f"{filters['domain']} in {network_label(filters['asn'], filters.get('cc'))}"
    bounds: dict[str, Any] = {"since_ms": w.since_ms, "until_ms": w.until_ms}

    def read() -> tuple[Any, ...]:
        series = storage.timeline(bucket_ms=w.bucket_ms, **filters, **bounds)
        rows = storage.blocking(**filters, **bounds)
        where = MeasurementFilter(**filters, **bounds)
        recent, _ = storage.measurements_page(where, limit=RECENT)
        return series, rows, recent

    series, rows, stored = await asyncio.to_thread(read)
    recent = await asyncio.to_thread(lambda: [_listed(m) for m in stored])
    context = common(who, "timeline", f"Timeline: {subject}") | {
        "window": w, "subject": subject, "filters": filters, "rows": rows, "recent": recent,
        "api": TIMELINE_API, "bounds": bounds, "report_link": _report(filters, w),
        "chart": charts.timeline_svg(
            series, bucket_ms=w.bucket_ms, since_ms=w.since_ms, until_ms=w.until_ms,
            title=f"{subject}: measurements by verdict, last {w.days} days"),
    }  # fmt: skip
    return await respond(who, "timeline.html", context)


@routes.get(paths.OUTAGES_PATH, allow_head=False)
@page
async def outages(request: web.Request) -> web.Response:
    params = read_params(request.query, frozenset({"days", "asn", "cc"}))
    who = await session.viewer(request)
    now = now_ms()
    w = window(params["days"], now)
    filters = {k: params[k] for k in ("cc", "asn") if k in params}
    found = await request.app[STORAGE].outages_async(
        now_ms=now, since_ms=w.since_ms, until_ms=w.until_ms, **filters
    )
    span = _span(w.days)
    context = common(who, "outages", "Outages") | {
        "window": w, "outages": found, "filters": filters,
        "chart": _outage_chart(found, w.since_ms, w.until_ms, span),
    }  # fmt: skip
    return await respond(who, "outages.html", context)


@routes.get(paths.MEASUREMENT_PATH, allow_head=False)
@page
async def measurement(request: web.Request) -> web.Response:
    read_params(request.query, frozenset())
    who = await session.viewer(request)
    text = request.match_info["id"]
    storage = request.app[STORAGE]
    try:
        row = await asyncio.to_thread(measurement_by_id, storage, text[:64])
    except ValueError:
        raise ApiError(400, "a measurement id is a UUID") from None
    if row is None:
        raise ApiError(404, "no measurement with this id")
    hops: list[HopRow] = []
    try:
        m = decode_measurement(row.record)
        obj: dict[str, Any] = json.loads(measurement_json(Target.parse(m.url), m))
    except (WireError, TargetError) as exc:
        obj = {"id": row.id, "decode_error": str(exc)}
    else:
        # The routers that could point at the agent are the operator's to see (collector.traces).
        obj = shown(obj, operator=who.operator, lookup=request.app[ENRICHER].lookup)
        if m.trace is not None:
            censor = m.verdict.evidence.get("censor_ttl")
            hops = hop_rows(m.trace, censor, operator=who.operator)
    obj["verdict"] = row.verdict  # reclassification rewrites the column, not the record
    domain = _host(obj.get("url") or obj.get("target")) or "measurement"
    context = common(who, "", f"{domain}: {row.verdict}") | {
        "row": row, "domain": domain, "explanation": explain(obj),
        "evidence": obj.get("evidence") or {}, "control_failure": obj.get("control_failure"),
        "observations": json.dumps(obj, indent=1), "hops": hops,
    }  # fmt: skip
    return await respond(who, "measurement.html", context)

"""Collector web layer: the JSON query API, as a route table.

``GET /api/v1/blocking``, ``/timeline``, ``/measurements`` and ``/outages``; the SQL is in
``collector.storage.queries`` and ``collector.storage.blocking`` (and the outage logic in
``collector.outages``). Handlers check the query string (``collector.web.params``; a bad
value raises a 400 that ``collector.web.errors`` renders), call the storage on a worker
thread and shape the JSON. Times go out as Unix milliseconds.

Public answers are at network granularity: no agent id, no time the collector received a
batch (the records of one upload share it to the millisecond, which would group them by
agent), outages with a count of agents. The operator's token (``collector.web.operator``)
adds those, and the ``agent`` filter. The operator-only routes are in that module.

A client that goes away cancels its handler (aiohttp's handler cancellation, on in
``serve`` and in the test server); a measurements page being built on a worker thread then
stops at its next row (:func:`cancellable`), rather than finish for nobody while other
requests wait for the threads.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from agent.api.paths import BLOCKING_PATH, MEASUREMENTS_PATH, OUTAGES_PATH, TIMELINE_PATH
from agent.model.measurement import Target, TargetError
from agent.wire.json import measurement_json
from agent.wire.record import WireError, decode_measurement
from collector.degradation import DEGRADED, Degradation
from collector.ingest.accept import now_ms
from collector.outages import Outage
from collector.storage.queries import StoredMeasurement, stop_if
from collector.traces import Lookup, shown
from collector.web.keys import ENRICHER, STORAGE
from collector.web.operator import is_operator, operator_only
from collector.web.params import (
    BUCKETS,
    OUTAGE_KINDS,
    OUTAGE_PARAMS,
    PAGE_PARAMS,
    TIMELINE_PARAMS,
    WINDOW,
    BadParam,
    check_query,
    parse_bucket,
    parse_filters,
    parse_name,
    parse_page,
)

routes = web.RouteTableDef()
_T = TypeVar("_T")


async def cancellable(work: Callable[[threading.Event], _T]) -> _T:
    """``work(cancelled)`` on a worker thread; ``cancelled`` is set if this coroutine is
    cancelled first, for ``work`` to stop at its next look. A thread cannot be interrupted,
    and a job still queued for one is dropped by the executor on cancellation anyway."""
    cancelled = threading.Event()
    try:
        return await asyncio.to_thread(work, cancelled)
    except asyncio.CancelledError:
        cancelled.set()
        raise


@routes.get(BLOCKING_PATH, allow_head=False)
async def blocking(request: web.Request) -> web.Response:
    filters = parse_filters(check_query(request.query, WINDOW))
    storage = request.app[STORAGE]

    def encoded() -> bytes:
        # BlockingRow is a msgspec struct: encoded straight to the documented objects, in
        # C, with no dict per row (12,000 rows: ~45 ms as dicts and json.dumps, ~10 ms
        # here). On the worker thread with the query, like freeing the rows after it.
        return msgspec.json.encode({"rows": storage.blocking(**filters)})

    return web.Response(
        body=await asyncio.to_thread(encoded), content_type="application/json", charset="utf-8"
    )


@routes.get(TIMELINE_PATH, allow_head=False)
async def timeline(request: web.Request) -> web.Response:
    params = check_query(request.query, TIMELINE_PARAMS)
    filters = parse_filters(params)
    bucket = parse_bucket(params)
    points = await request.app[STORAGE].timeline_async(bucket_ms=BUCKETS[bucket], **filters)
    return web.json_response(
        {
            "bucket": bucket,
            "points": [
                {"start_ms": start, "counts": counts, "total": sum(counts.values())}
                for start, counts in points
            ],
        }
    )


@routes.get(MEASUREMENTS_PATH, allow_head=False)
async def list_measurements(request: web.Request) -> web.Response:
    where, limit, cursor = parse_page(check_query(request.query, PAGE_PARAMS))
    operator = await is_operator(request)
    storage = request.app[STORAGE]
    lookup = request.app[ENRICHER].lookup

    def page(cancelled: threading.Event) -> tuple[list[dict[str, Any]], str | None]:
        rows, next_cursor = storage.measurements_page(where, limit, cursor, cancelled)
        views = []
        # Decoding a record is the page's main cost: looked at between every two.
        for row in rows:
            stop_if(cancelled)
            views.append(measurement_view(row, operator=operator, lookup=lookup))
        return views, next_cursor

    # Decoding up to a page of records is CPU work: off the event loop with the query.
    views, next_cursor = await cancellable(page)
    return web.json_response({"measurements": views, "next_cursor": next_cursor})


@routes.get(OUTAGES_PATH, allow_head=False)
async def outages(request: web.Request) -> web.Response:
    """``?cc=&asn=&since=&until=&kind=``, and for the operator ``agent=``: the outage events
    from the agents' connectivity checks (``collector.outages``) and the degraded periods from
    their goodput samples (``collector.degradation``), newest first."""
    params = check_query(request.query, OUTAGE_PARAMS)
    filters = parse_filters(params)
    kind = params.get("kind")
    if kind is not None and kind not in OUTAGE_KINDS:
        raise BadParam(f"'kind' must be one of {', '.join(OUTAGE_KINDS)}")
    operator = await is_operator(request)
    if (agent := parse_name(params, "agent")) is not None:
        if not operator:  # one agent's outages are when that volunteer was offline
            raise operator_only("the 'agent' filter")
        filters["agent"] = agent
    storage = request.app[STORAGE]
    views: list[tuple[int, dict[str, Any]]] = []
    if kind != DEGRADED:
        found = await storage.outages_async(now_ms=now_ms(), **filters)
        views += [
            (o.start_ms, outage_view(o, operator=operator)) for o in found if kind in (None, o.kind)
        ]
    if kind in (None, DEGRADED):
        periods = await storage.degradations_async(**filters)
        views += [(d.start_ms, degradation_view(d, operator=operator)) for d in periods]
    views.sort(key=lambda view: -view[0])  # stable: each kind keeps its own order within
    return web.json_response({"outages": [view for _, view in views]})


def measurement_view(
    row: StoredMeasurement, *, operator: bool, lookup: Lookup | None = None
) -> dict[str, Any]:
    """The record as the agent's CLI prints it, plus where it was measured from; for the
    operator also which agent sent it and when. A trace as ``collector.traces.shown`` shows
    it (the AS of ``after_hop`` through ``lookup``)."""
    extra: dict[str, Any] = {"asn": row.asn, "cc": row.cc}
    if operator:
        extra |= {"agent_id": row.agent_id, "received_ms": row.received_ms}
    try:
        m = decode_measurement(row.record)
        obj: dict[str, Any] = json.loads(measurement_json(Target.parse(m.url), m))
    except (WireError, TargetError) as exc:
        # Still listed, so a walk sees every row; the stored verdict stands in.
        obj = {"id": row.id, "verdict": row.verdict, "decode_error": str(exc)}
    # The stored verdict wins: reclassification rewrites the column, not the record.
    obj["verdict"] = row.verdict
    return {**shown(obj, operator=operator, lookup=lookup), **extra}


def degradation_view(d: Degradation, *, operator: bool) -> dict[str, Any]:
    """A degraded period, with its goodput and the baseline it fell from."""
    view: dict[str, Any] = {
        "kind": d.kind,
        "start_ms": d.start_ms,
        "end_ms": d.end_ms,
        "last_normal_ms": d.last_normal_ms,
        "asn": d.asn,
        "cc": d.cc,
        "agent_count": len(d.agents),
        "agents_sampled": d.sampled,
        "samples": len(d.rates),
        "goodput_kbps": round(d.goodput_bps / 1000),
        "baseline_kbps": round(d.baseline_bps / 1000),
    }
    if operator:
        view["agents"] = list(d.agents)
    return view


def outage_view(o: Outage, *, operator: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "kind": o.kind,
        "start_ms": o.start_ms,
        "end_ms": o.end_ms,
        "last_online_ms": o.last_online_ms,
        "first_online_ms": o.first_online_ms,
        "asn": o.asn,
        "cc": o.cc,
        "agent_count": len(o.agents),
        "checks": o.checks,
    }
    if operator:
        view["agents"] = list(o.agents)
    return view

"""Collector web layer: the agents' routes and the service routes, as a route table.

``/api/v1/health``, ``/control``, ``/enroll``, ``POST /measurements``, ``/testlist`` and
``/metrics``. Handlers only parse the request, call into ``collector.control`` (the cache),
``collector.ingest`` or the storage, and shape the answer; a bad request raises
:class:`collector.errors.ApiError`, which ``collector.web.errors`` renders.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from agent.api.paths import (
    CACHE_HEADER,
    CONTROL_PATH,
    ENROLL_PATH,
    HEALTH_PATH,
    MAX_ADDRESSES,
    MEASUREMENTS_PATH,
    METRICS_PATH,
    MSGPACK,
    TESTLIST_PATH,
)
from agent.model.measurement import Target, TargetError
from collector import __version__
from collector.control import measurable
from collector.enrich import client_address
from collector.errors import ApiError
from collector.ingest.accept import enroll, ingest
from collector.web.keys import (
    CONTROLS,
    ENRICHER,
    INGEST_THREADS,
    LIMITER,
    MEASURE,
    METRICS,
    SETTINGS,
    STORAGE,
    TESTLIST,
)

routes = web.RouteTableDef()
_READ_CHUNK = 64 * 1024


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


async def json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:  # JSON syntax, or a body that is not UTF-8
        raise bad_request("the body must be JSON") from None


@routes.get(HEALTH_PATH)
async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "version": __version__})


def parse_control_request(data: Any) -> tuple[Target, tuple[str, ...]]:
    """``{"url": str, "addresses": [ip, ...]}`` -> the target and the addresses to measure.

    Addresses the collector must not probe (its own host or LAN) are dropped, not refused:
    an agent legitimately forwards a bogon its resolver handed it.
    """
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    url = data.get("url")
    if not isinstance(url, str):
        raise bad_request("'url' must be a string")
    try:
        target = Target.parse(url)
    except TargetError as exc:
        raise bad_request(f"'url': {exc}") from None
    raw = data.get("addresses", [])
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise bad_request("'addresses' must be a list of IP address strings")
    if len(raw) > MAX_ADDRESSES:
        raise bad_request(f"'addresses' may list at most {MAX_ADDRESSES} IPs")
    addresses = set()
    for text in raw:
        try:
            addresses.add(str(ipaddress.ip_address(text)))
        except ValueError:
            raise bad_request(f"'addresses': {text!r} is not an IP address") from None
    return target, tuple(sorted(a for a in addresses if measurable(a)))


@routes.post(CONTROL_PATH)
async def control(request: web.Request) -> web.Response:
    target, addresses = parse_control_request(await json_body(request))
    measure = request.app[MEASURE]
    body, cache = await request.app[CONTROLS].get(
        (target.url, addresses), lambda: measure(target, addresses)
    )
    return web.Response(body=body, content_type=MSGPACK, headers={CACHE_HEADER: cache})


@routes.post(ENROLL_PATH)
async def enroll_agent(request: web.Request) -> web.Response:
    """JSON ``{"token", "public_key"}`` -> 201 ``{"agent_id"}``; 400, 401 or 403 (ingest.enroll)."""
    agent_id = await enroll(request.app[STORAGE], await json_body(request))
    return web.json_response({"agent_id": agent_id}, status=201)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, at most ``limit`` bytes: refused early by Content-Length, and while reading
    when there is none (chunked), so an oversized upload is never buffered whole."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"the body is {request.content_length} bytes, at most {limit}")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@routes.post(MEASUREMENTS_PATH)
async def upload_measurements(request: web.Request) -> web.Response:
    """A signed msgpack batch -> 200 ``{"stored": [id...], "duplicates": [id...], "checks": n}``
    (``n``: the batch's connectivity checks, all stored now, whether new or not)."""
    if request.content_type != MSGPACK:
        raise ApiError(415, f"the body must be a signed batch, {MSGPACK}")
    settings = request.app[SETTINGS]
    # Read past client_max_size, which stays small for the JSON routes, up to a batch.
    data = await read_body(request, settings.max_batch_request_bytes)
    # The address is looked up and dropped here: only the ASN and country are stored.
    network = request.app[ENRICHER].lookup(client_address(request, settings.trusted_proxies))
    result = await ingest(
        request.app[STORAGE],
        request.app[LIMITER],
        data,
        asn=network.asn,
        cc=network.cc,
        executor=request.app[INGEST_THREADS],
    )
    request.app[METRICS].count_measurements(len(result.stored), len(result.duplicates))
    request.app[METRICS].checks.inc(result.checks)
    # msgspec, as the query API: the stdlib encoder cost the event loop ~0.3 ms a batch.
    body = {"stored": result.stored, "duplicates": result.duplicates, "checks": result.checks}
    return web.Response(body=msgspec.json.encode(body), content_type="application/json")


def _matches(request: web.Request, etag: str) -> bool:
    # Weak comparison (RFC 9110 13.1.2), as If-None-Match requires.
    wanted = request.if_none_match
    return wanted is not None and any(tag.value in (etag, "*") for tag in wanted)


@routes.get(TESTLIST_PATH)
async def get_testlist(request: web.Request) -> web.StreamResponse:
    """``{"urls", "count", "source"}``, or the CSV itself with ``?format=csv``."""
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise bad_request("'format' must be json or csv")
    source = request.app.get(TESTLIST)
    if source is None:
        raise ApiError(404, "no test list is configured on this collector")
    current = await source.get()
    etag = f"{current.digest}-{fmt}"
    # Agents poll: let caches revalidate every time, which the ETag makes cheap.
    headers = {"Cache-Control": "no-cache"}
    if _matches(request, etag):
        response = web.Response(status=304, headers=headers)
    elif fmt == "csv":
        response = web.Response(
            body=current.csv, content_type="text/csv", charset="utf-8", headers=headers
        )
    else:
        body = {"urls": list(current.urls), "count": len(current.urls), "source": current.source}
        response = web.json_response(body, headers=headers)
    response.etag = etag
    return response


@routes.get(METRICS_PATH)
async def serve_metrics(request: web.Request) -> web.Response:
    """The text exposition format. The Content-Type is set as a header, whole, because it
    carries a version parameter aiohttp's content_type would not take."""
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

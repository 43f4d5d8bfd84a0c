"""Collector web layer: the aiohttp app factory and its thin handlers.

``create_app(settings)`` builds the service; the CLI runs it. Handlers only
parse and validate the request, call into ``collector.control`` (cache) and
``agent.site.measure_vantage`` (the probes, run from the uncensored side), and
encode the answer with ``agent.wire``; enrolment and batch upload go through
``collector.ingest`` into the storage opened in a ``cleanup_ctx``. Bad input is
always a 4xx with a JSON ``{"error": ...}`` body, never a 5xx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from aiohttp import web

from agent.batch_verify import prepare_verifier
from agent.control import CACHE_HEADER, CONTROL_PATH, HEALTH_PATH, MAX_ADDRESSES, MSGPACK
from agent.measurement import Target, TargetError
from agent.site import ProbeConfig, measure_vantage
from agent.wire import encode_vantage
from collector import __version__
from collector.config import Settings
from collector.control import ControlCache, measurable
from collector.enrich import ENRICHER, client_address, enricher_context
from collector.ingest import ApiError, RateLimiter, enroll, ingest, read_body
from collector.metrics import METRICS, METRICS_PATH, Metrics, note_reject, serve_metrics
from collector.queries import outage_route, query_routes
from collector.storage import Storage, open_storage
from collector.testlist import TESTLIST_PATH, get_testlist, testlist_context

# The cache key: the normalized URL and the sorted, de-duplicated extra addresses.
ControlKey = tuple[str, tuple[str, ...]]
# Runs one control measurement and returns the encoded Vantage.
Measure = Callable[[Target, tuple[str, ...]], Awaitable[bytes]]

# The agent sends up to its own max_endpoints addresses; the control's DNS answers come first.
CONTROL_MAX_ENDPOINTS = 8

SETTINGS = web.AppKey("settings", Settings)
MEASURE: web.AppKey[Measure] = web.AppKey("measure")
CONTROLS: web.AppKey[ControlCache[ControlKey, bytes]] = web.AppKey("controls")
STORAGE = web.AppKey("storage", Storage)
INGEST_THREADS = web.AppKey("ingest_threads", ThreadPoolExecutor)
LIMITER = web.AppKey("limiter", RateLimiter)

ENROLL_PATH = "/api/v1/enroll"
MEASUREMENTS_PATH = "/api/v1/measurements"


class BadRequest(ValueError):
    """The request body is not a valid control request; the message says why."""


def probe_config(settings: Settings) -> ProbeConfig:
    return ProbeConfig(
        resolvers=settings.resolvers,
        benign_name=settings.benign_sni,
        ca_file=settings.ca_file,
        timeout=settings.timeout,
        dns_timeout=min(2.0, settings.timeout),
        max_endpoints=CONTROL_MAX_ENDPOINTS,
    )


def control_measure(settings: Settings) -> Measure:
    """The real control: the agent's own probes, run from the collector's network."""
    config = probe_config(settings)

    async def measure(target: Target, addresses: tuple[str, ...]) -> bytes:
        vantage = await measure_vantage(target, config, extra_addresses=addresses)
        return encode_vantage(vantage)

    return measure


def parse_control_request(data: Any) -> tuple[Target, tuple[str, ...]]:
    """``{"url": str, "addresses": [ip, ...]}`` -> the target and the addresses to measure.

    Addresses the collector must not probe (its own host or LAN) are dropped, not refused:
    an agent legitimately forwards a bogon its resolver handed it.
    """
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    url = data.get("url")
    if not isinstance(url, str):
        raise BadRequest("'url' must be a string")
    try:
        target = Target.parse(url)
    except TargetError as exc:
        raise BadRequest(f"'url': {exc}") from None
    raw = data.get("addresses", [])
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise BadRequest("'addresses' must be a list of IP address strings")
    if len(raw) > MAX_ADDRESSES:
        raise BadRequest(f"'addresses' may list at most {MAX_ADDRESSES} IPs")
    addresses = set()
    for text in raw:
        try:
            addresses.add(str(ipaddress.ip_address(text)))
        except ValueError:
            raise BadRequest(f"'addresses': {text!r} is not an IP address") from None
    return target, tuple(sorted(a for a in addresses if measurable(a)))


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own 4xx (404, 405, 413) as the same JSON errors the handlers return."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, exc.reason)
        if "Allow" in exc.headers:  # a 405 must say what is allowed
            response.headers["Allow"] = exc.headers["Allow"]
        return response


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "version": __version__})


async def control(request: web.Request) -> web.Response:
    try:
        target, addresses = parse_control_request(await request.json())
    except BadRequest as exc:
        return error_response(400, str(exc))
    except ValueError:  # JSON syntax, or a body that is not UTF-8
        return error_response(400, "the body must be JSON")
    measure = request.app[MEASURE]
    body, cache = await request.app[CONTROLS].get(
        (target.url, addresses), lambda: measure(target, addresses)
    )
    return web.Response(body=body, content_type=MSGPACK, headers={CACHE_HEADER: cache})


async def enroll_agent(request: web.Request) -> web.Response:
    """JSON ``{"token", "public_key"}`` -> 201 ``{"agent_id"}``; 400, 401 or 403 (ingest.enroll)."""
    try:
        data = await request.json()
    except ValueError:  # JSON syntax, or a body that is not UTF-8
        return error_response(400, "the body must be JSON")
    try:
        agent_id = await enroll(request.app[STORAGE], data)
    except ApiError as exc:
        return exc.response()
    return web.json_response({"agent_id": agent_id}, status=201)


async def upload_measurements(request: web.Request) -> web.Response:
    """A signed msgpack batch -> 200 ``{"stored": [id...], "duplicates": [id...], "checks": n}``
    (``n``: the batch's connectivity checks, all stored now, whether new or not)."""
    if request.content_type != MSGPACK:
        return error_response(415, f"the body must be a signed batch, {MSGPACK}")
    try:
        # Read past client_max_size, which stays small for the JSON routes, up to a batch.
        data = await read_body(request, request.app[SETTINGS].max_batch_request_bytes)
        # The address is looked up and dropped here: only the ASN and country are stored.
        network = request.app[ENRICHER].lookup(
            client_address(request, request.app[SETTINGS].trusted_proxies)
        )
        result = await ingest(
            request.app[STORAGE],
            request.app[LIMITER],
            data,
            asn=network.asn,
            cc=network.cc,
            executor=request.app[INGEST_THREADS],
        )
    except ApiError as exc:
        note_reject(request, exc.reason)
        return exc.response()
    request.app[METRICS].count_measurements(len(result.stored), len(result.duplicates))
    request.app[METRICS].checks.inc(result.checks)
    # msgspec, as the query API: the stdlib encoder cost the event loop ~0.3 ms a batch.
    body = {"stored": result.stored, "duplicates": result.duplicates, "checks": result.checks}
    return web.Response(body=msgspec.json.encode(body), content_type="application/json")


def _storage(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        # Opening runs the migrations; blocking, but once, before the first request.
        app[STORAGE] = storage = await asyncio.to_thread(open_storage, settings.db_url)
        app[INGEST_THREADS] = threads = ThreadPoolExecutor(
            storage.ingest_threads, thread_name_prefix="ingest"
        )
        interval = sys.getswitchinterval()
        if storage.switch_interval_s is not None:
            sys.setswitchinterval(storage.switch_interval_s)
        try:
            yield
        finally:
            sys.setswitchinterval(interval)
            # Uploads still running finish their write before the store closes.
            await asyncio.to_thread(threads.shutdown)
            storage.close()

    return context


def _control_cache(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        cache: ControlCache[ControlKey, bytes] = ControlCache(
            ttl=settings.control_ttl,
            max_entries=settings.cache_entries,
            max_concurrent=settings.concurrent_controls,
        )
        app[CONTROLS] = cache
        yield
        await cache.close()

    return context


def create_app(settings: Settings, *, measure: Measure | None = None) -> web.Application:
    """The collector service; ``measure`` replaces the real control only in tests.

    ``client_max_size`` bounds the JSON routes (control, enroll); the measurements route
    reads its larger body itself, capped at ``settings.max_batch_request_bytes``.
    """
    # The batch decoders are built here, in the starting thread, not by the first uploads'
    # worker threads at once (agent.wire_check says why).
    prepare_verifier()
    app = web.Application(client_max_size=settings.max_request_bytes, middlewares=[json_errors])
    app[SETTINGS] = settings
    app[MEASURE] = measure if measure is not None else control_measure(settings)
    app[LIMITER] = RateLimiter(settings.ingest_rate, settings.ingest_burst)
    app[METRICS] = metrics = Metrics()
    # Outermost, before json_errors, so it counts the status the client finally gets.
    app.middlewares.insert(0, metrics.middleware(MEASUREMENTS_PATH))
    app.cleanup_ctx.append(_storage(settings))
    app.cleanup_ctx.append(_control_cache(settings))
    app.cleanup_ctx.append(enricher_context(settings.geoip))
    app.cleanup_ctx.append(testlist_context(settings.testlist))
    app.router.add_get(HEALTH_PATH, health)
    app.router.add_get(TESTLIST_PATH, get_testlist)
    app.router.add_post(CONTROL_PATH, control)
    app.router.add_post(ENROLL_PATH, enroll_agent)
    app.router.add_post(MEASUREMENTS_PATH, upload_measurements)
    app.router.add_routes(query_routes(STORAGE))  # GET blocking, timeline, measurements, agents
    app.router.add_routes([outage_route(STORAGE)])  # GET outages
    app.router.add_get(METRICS_PATH, serve_metrics)
    return app

"""Collector web layer: the aiohttp app factory.

``create_app(settings)`` builds the service; the CLI runs it. The routes are the tables of
``collector.web.handlers`` (the agents' and the service's), ``collector.web.queries`` and
``collector.web.operator`` (what needs the operator's token); what they share sits on the
app under the keys of ``collector.web.keys``, set here or in a ``cleanup_ctx`` that opens it
before the first request and closes it after the last. Bad input is always a 4xx with a
JSON ``{"error": ...}`` body (``collector.web.errors``). How long a client may take to send
a request: ``collector.web.timeouts``.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from agent.api.paths import MEASUREMENTS_PATH
from agent.model.addresses import may_reach
from agent.model.measurement import Target
from agent.site import ProbeConfig, measure_vantage
from agent.wire.record import encode_vantage
from collector.config import Settings
from collector.control import ControlCache
from collector.dashboard import routes as dashboard
from collector.enrich import Enricher
from collector.evidence.key import load_or_create_key
from collector.fingerprints import load_served, report
from collector.ingest.accept import RateLimiter
from collector.ingest.verify import prepare_verifier
from collector.storage import open_storage
from collector.testlist import TestListSource
from collector.web import evidence, export, farend, handlers, incidents, operator, queries
from collector.web.errors import json_errors
from collector.web.keys import (
    AGENT_KEYS,
    COLLECTOR_KEY,
    CONTROL_LIMITER,
    CONTROLS,
    ENRICHER,
    FINGERPRINTS,
    INGEST_THREADS,
    LIMITER,
    MEASURE,
    METRICS,
    SETTINGS,
    STORAGE,
    TESTLIST,
    ControlKey,
    Measure,
)
from collector.web.metrics import Metrics
from collector.web.timeouts import body_deadline

__all__ = ["create_app"]

# The agent sends up to its own max_endpoints addresses; the control's DNS answers come first.
CONTROL_MAX_ENDPOINTS = 8
# An agent's key is looked up once per this many seconds, not per control request; a
# revocation takes effect on the control within it.
AGENT_KEY_TTL = 30.0
AGENT_KEY_ENTRIES = 10_000
AGENT_KEY_LOOKUPS = 4  # at once, each a trip to a storage thread

Context = Callable[[web.Application], AsyncIterator[None]]


def probe_config(settings: Settings) -> ProbeConfig:
    return ProbeConfig(
        resolvers=settings.resolvers,
        benign_name=settings.benign_sni,
        ca_file=settings.ca_file,
        timeout=settings.timeout,
        dns_timeout=min(2.0, settings.timeout),
        max_endpoints=CONTROL_MAX_ENDPOINTS,
        resolv_conf=settings.resolv_conf,
        # Never the collector's own host, LAN or metadata service on an agent's say-so.
        may_reach=functools.partial(may_reach, allowed=settings.allowed_networks),
    )


def control_measure(settings: Settings) -> Measure:
    """The real control: the agent's own probes, run from the collector's network."""
    config = probe_config(settings)

    async def measure(target: Target, addresses: tuple[str, ...]) -> bytes:
        vantage = await measure_vantage(target, config, extra_addresses=addresses)
        return encode_vantage(vantage)

    return measure


def _storage(settings: Settings) -> Context:
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


def _control_cache(settings: Settings) -> Context:
    async def context(app: web.Application) -> AsyncIterator[None]:
        cache: ControlCache[ControlKey, bytes] = ControlCache(
            ttl=settings.control_ttl,
            max_entries=settings.cache_entries,
            max_concurrent=settings.concurrent_controls,
            deadline=settings.control_deadline,
        )
        app[CONTROLS] = cache
        keys: ControlCache[str, Ed25519PublicKey | None] = ControlCache(
            ttl=AGENT_KEY_TTL, max_entries=AGENT_KEY_ENTRIES, max_concurrent=AGENT_KEY_LOOKUPS
        )
        app[AGENT_KEYS] = keys
        yield
        await cache.close()
        await keys.close()

    return context


def _enricher(paths: Sequence[str]) -> Context:
    async def context(app: web.Application) -> AsyncIterator[None]:
        enricher = Enricher.open(paths)
        app[ENRICHER] = enricher
        yield
        enricher.close()

    return context


def _testlist(path: str | None) -> Context:
    async def context(app: web.Application) -> AsyncIterator[None]:
        if path is not None:
            app[TESTLIST] = await asyncio.to_thread(TestListSource.open, Path(path))
        yield

    return context


def _fingerprints(paths: Sequence[str]) -> Context:
    async def context(app: web.Application) -> AsyncIterator[None]:
        # Once, off the loop: ~2,000 rows parsed and their regexps compiled.
        app[FINGERPRINTS] = served = await asyncio.to_thread(load_served, paths)
        report(served)
        yield

    return context


def _collector_key(path: str | None) -> Context:
    async def context(app: web.Application) -> AsyncIterator[None]:
        # Created at the first start, reused after (collector.evidence.key); without a
        # file (Settings built in code) one for this process only.
        app[COLLECTOR_KEY] = (
            Ed25519PrivateKey.generate()
            if path is None
            else await asyncio.to_thread(load_or_create_key, path)
        )
        yield

    return context


def create_app(settings: Settings, *, measure: Measure | None = None) -> web.Application:
    """The collector service; ``measure`` replaces the real control only in tests.

    ``client_max_size`` bounds the JSON routes (control, enroll); the measurements route
    reads its larger body itself, capped at ``settings.max_batch_request_bytes``.
    """
    # The batch decoders are built here, in the starting thread, not by the first uploads'
    # worker threads at once (collector.ingest.check says why).
    prepare_verifier()
    app = web.Application(client_max_size=settings.max_request_bytes, middlewares=[json_errors])
    app[SETTINGS] = settings
    app[MEASURE] = measure if measure is not None else control_measure(settings)
    app[LIMITER] = RateLimiter(settings.ingest_rate, settings.ingest_burst)
    app[CONTROL_LIMITER] = RateLimiter(settings.control_rate, settings.control_burst)
    app[METRICS] = metrics = Metrics()
    # Outermost, before json_errors, so it counts the status the client finally gets.
    app.middlewares.insert(0, metrics.middleware(MEASUREMENTS_PATH))
    # First of all: the body's clock starts as soon as its head is in.
    app.middlewares.insert(0, body_deadline(settings.body_timeout))
    app.cleanup_ctx.append(_storage(settings))
    app.cleanup_ctx.append(_control_cache(settings))
    app.cleanup_ctx.append(_enricher(settings.geoip))
    app.cleanup_ctx.append(_testlist(settings.testlist))
    app.cleanup_ctx.append(_fingerprints(settings.fingerprints))
    app.cleanup_ctx.append(_collector_key(settings.key_file))
    app.cleanup_ctx.append(farend.farend_context(settings))
    app.router.add_routes(handlers.routes)
    app.router.add_routes(queries.routes)
    app.router.add_routes(evidence.routes)
    app.router.add_routes(farend.routes)
    incidents.install(app)
    operator.install(app)
    export.install(app)
    # The dashboard's pages at /; after the operator's token cache, which they use.
    dashboard.install(app)
    return app

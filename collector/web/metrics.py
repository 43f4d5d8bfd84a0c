"""Collector web layer: the Prometheus metrics, the counters behind ``GET /metrics`` (served
to the operator only, by ``collector.web.operator``).

Each app owns its :class:`Metrics` and with it a private ``CollectorRegistry``, never the
global default one: several apps in one process (the tests, an embedding) would otherwise
register the same names twice, and their counts would mix. Handlers stay thin: one
middleware, scoped to the ingest and control routes, times each request and counts its
outcome from the final status; the ingest handler adds only the reason of a refusal
(:func:`note_reject`) and the stored/duplicate split (:meth:`Metrics.count_measurements`),
which the status alone does not tell.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest

from agent.api.paths import CACHE_HEADER, CONTROL_PATH
from collector.farend.limits import DIRECTIONS, REFUSALS

# agent.wire.batch.BatchError reasons, then collector.ingest's own; pre-set to 0 so a dashboard
# sees every series from the start instead of "no data" until the first refusal.
REJECT_REASONS = (
    "signature",
    "schema",
    "size",
    "timestamp",
    "duplicate_id",
    "agent",
    "revoked",
    "replay",
    "rate",
    "content_type",
    "other",
)
# Refusals raised without a reason (aiohttp's own, or read_body's 413) get one by status.
_REASON_BY_STATUS = {413: "size", 415: "content_type", 429: "rate"}
# Set by the ingest handler, read by the middleware once the response is made.
_REASON: web.RequestKey[str | None] = web.RequestKey("netsonde_reject_reason")


def note_reject(request: web.Request, reason: str | None) -> None:
    """Record why the ingest handler refused this request, for the rejects counter."""
    request[_REASON] = reason


def _outcome(status: int) -> str:
    if status < 400:
        return "accepted"
    return "rejected" if status < 500 else "error"


class Metrics:
    """The collector's counters, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.batches = Counter(
            "netsonde_ingest_batches",
            "Batch uploads by outcome: accepted (2xx), rejected (4xx), error (5xx), "
            "abandoned (no answer: the client went away or was cut off for slowness).",
            ["outcome"],
            registry=self.registry,
        )
        self.measurements = Counter(
            "netsonde_ingest_measurements",
            "Measurements in accepted batches: newly stored, or already stored (duplicate).",
            ["result"],
            registry=self.registry,
        )
        self.rejects = Counter(
            "netsonde_ingest_rejects",
            "Refused batch uploads by reason (agent.wire.batch.BatchError and ingest reasons).",
            ["reason"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "netsonde_ingest_seconds",
            "Time to answer a batch upload, the whole request, whatever the outcome.",
            registry=self.registry,
        )
        self.checks = Counter(
            "netsonde_ingest_checks",
            "Connectivity checks (heartbeats) in accepted batches, new or already stored.",
            registry=self.registry,
        )
        self.controls = Counter(
            "netsonde_control_requests",
            "Control requests by cache result: hit, shared, miss; none when refused.",
            ["cache"],
            registry=self.registry,
        )
        self.farend_refusals = Counter(
            "netsonde_farend_refusals",
            "What the far end turned away: no valid token, an agent's daily bytes spent, too "
            "many transfers at once, a malformed request, a datagram from an unleased address.",
            ["reason"],
            registry=self.registry,
        )
        self.farend_bytes = Counter(
            "netsonde_farend_bytes",
            "Payload bytes the far end moved for agents: down, up, UDP echoed both ways (udp), "
            "and the TCP echo of the protocol test (echo).",
            ["direction"],
            registry=self.registry,
        )
        for reason in REFUSALS:
            self.farend_refusals.labels(reason)
        for direction in DIRECTIONS:
            self.farend_bytes.labels(direction)
        for outcome in ("accepted", "rejected", "error", "abandoned"):
            self.batches.labels(outcome)
        for result in ("stored", "duplicate"):
            self.measurements.labels(result)
        for reason in REJECT_REASONS:
            self.rejects.labels(reason)

    def count_measurements(self, stored: int, duplicates: int) -> None:
        self.measurements.labels("stored").inc(stored)
        self.measurements.labels("duplicate").inc(duplicates)

    # collector.farend.limits.Counts: the far end running in this process reports here.
    def refused(self, reason: str) -> None:
        self.farend_refusals.labels(reason).inc()

    def moved(self, direction: str, nbytes: int) -> None:
        self.farend_bytes.labels(direction).inc(nbytes)

    def exposition(self) -> bytes:
        return _generate_latest(self.registry)

    def middleware(self, ingest_path: str) -> Middleware:
        """Times and counts the uploads (POST) to ``ingest_path`` and the control requests.

        Meant outermost, so it sees the final status, after json_errors turned aiohttp's
        exceptions into responses; anything still raised is what the client gets as a 500.
        """

        @web.middleware
        async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
            # By method too: GET on the measurements path is the query API, not an upload.
            if request.method != "POST":
                return await handler(request)
            if request.path == CONTROL_PATH:
                response = await handler(request)
                self.controls.labels(response.headers.get(CACHE_HEADER, "none")).inc()
                return response
            if request.path != ingest_path:
                return await handler(request)
            started = time.perf_counter()
            status: int | None = 500  # stays so if the handler raises
            try:
                response = await handler(request)
                status = response.status
                return response
            except asyncio.CancelledError:
                status = None  # not an error of the collector's: nobody is waiting
                raise
            finally:
                self.seconds.observe(time.perf_counter() - started)
                self._count_batch(request, status)

        return measure

    def _count_batch(self, request: web.Request, status: int | None) -> None:
        if status is None:
            self.batches.labels("abandoned").inc()
            return
        outcome = _outcome(status)
        self.batches.labels(outcome).inc()
        if outcome == "rejected":
            reason = request.get(_REASON) or _REASON_BY_STATUS.get(status, "other")
            self.rejects.labels(reason).inc()

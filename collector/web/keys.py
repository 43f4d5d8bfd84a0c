"""Collector web layer: the typed keys of everything the app holds, in one place.

What a handler finds on ``request.app``: the settings, the open storage, the control cache
and its measuring function, the agents' keys and rate limiter for the control, the ingest
threads and rate limiter, the metrics, the address enricher, the test list and the
fingerprints. Each is set once, by ``create_app`` or a ``cleanup_ctx`` in
``collector.web.app``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from agent.model.measurement import Target
from collector.config import Settings
from collector.control import ControlCache
from collector.enrich import Enricher
from collector.export.stream import ExportLimits
from collector.farend.service import FarendService
from collector.fingerprints import ServedFingerprints
from collector.ingest.accept import RateLimiter
from collector.storage import Storage
from collector.testlist import TestListSource
from collector.web.metrics import Metrics

__all__ = [
    "AGENT_KEYS",
    "COLLECTOR_KEY",
    "CONTROLS",
    "CONTROL_LIMITER",
    "ENRICHER",
    "EXPORTS",
    "FAREND",
    "FINGERPRINTS",
    "INGEST_THREADS",
    "LIMITER",
    "MEASURE",
    "METRICS",
    "REPORTS",
    "SETTINGS",
    "STORAGE",
    "TESTLIST",
    "ControlKey",
    "Measure",
]

# The control cache's key: the measured URL (no query string, collector.control.control_target)
# and the sorted, de-duplicated extra addresses.
ControlKey = tuple[str, tuple[str, ...]]
# Runs one control measurement and returns the encoded Vantage.
Measure = Callable[[Target, tuple[str, ...]], Awaitable[bytes]]

SETTINGS = web.AppKey("settings", Settings)
MEASURE: web.AppKey[Measure] = web.AppKey("measure")
CONTROLS: web.AppKey[ControlCache[ControlKey, bytes]] = web.AppKey("controls")
# Enrolled agents' public keys by id, None for an unknown or revoked one, briefly cached.
AGENT_KEYS: web.AppKey[ControlCache[str, Ed25519PublicKey | None]] = web.AppKey("agent_keys")
CONTROL_LIMITER = web.AppKey("control_limiter", RateLimiter)
STORAGE = web.AppKey("storage", Storage)
INGEST_THREADS = web.AppKey("ingest_threads", ThreadPoolExecutor)
LIMITER = web.AppKey("limiter", RateLimiter)
METRICS = web.AppKey("metrics", Metrics)
ENRICHER = web.AppKey("enricher", Enricher)
TESTLIST = web.AppKey("testlist", TestListSource)  # absent when no test list is configured
FINGERPRINTS = web.AppKey("fingerprints", ServedFingerprints)  # empty when none configured
# The collector's own key, which signs evidence bundles (collector.evidence.key).
COLLECTOR_KEY = web.AppKey("collector_key", Ed25519PrivateKey)
# How many exports run at once, and their page size (collector.web.export).
EXPORTS = web.AppKey("exports", ExportLimits)
# Reports built at once (collector.web.incidents): each reads all its query's measurements.
REPORTS = web.AppKey("reports", asyncio.Semaphore)
FAREND = web.AppKey("farend", FarendService)  # absent without a far end (--no-farend)

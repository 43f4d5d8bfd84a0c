"""Agent daemon: the collector's blockpage fingerprints, cached on disk
(``agent.api.fingerprints`` fetches them).

Local files win: with ``probe.fingerprints`` set the daemon uses those and never asks. Without
them it GETs ``/api/v1/fingerprints`` in the test-list job (``agent.daemon.full``), on its
schedule (``testlist.refresh``), with the cached ETag, and writes a changed set to
``fingerprints.json`` in the state directory before it is used: an agent restarted while
the collector is unreachable measures with the copy it has, and a Raspberry Pi needs no
fingerprint files of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from agent.api.fingerprints import NOT_MODIFIED, fetch_fingerprints, parse_answer
from agent.daemon import budget
from agent.daemon.files import write_private
from agent.fingerprints import FingerprintSet

__all__ = [
    "FINGERPRINTS_CACHE",
    "CachedFingerprints",
    "CollectorFingerprints",
    "read_fingerprints_cache",
]

log = logging.getLogger("netsonde.agent")

FINGERPRINTS_CACHE = "fingerprints.json"  # the collector's fingerprints, as last fetched


@dataclass(frozen=True)
class CachedFingerprints:
    """The collector's fingerprints as last fetched, kept in ``FINGERPRINTS_CACHE``."""

    etag: str | None
    csv: str
    fetched_ms: int
    fingerprints: FingerprintSet


def read_fingerprints_cache(state_dir: Path) -> CachedFingerprints | None:
    """The cached set, parsed; None when there is none or it is unusable (then refetched).
    Compiles every regexp: call in a thread."""
    path = Path(state_dir) / FINGERPRINTS_CACHE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable, fetching the fingerprints again: %s", path, exc)
        return None
    csv = data.get("csv") if isinstance(data, dict) else None
    parsed = parse_answer(csv) if isinstance(csv, str) else "no CSV in it"
    if isinstance(parsed, str) or not isinstance(csv, str):
        log.warning("%s: %s; fetching the fingerprints again", path, parsed)
        return None
    etag, fetched = data.get("etag"), data.get("fetched_ms")
    return CachedFingerprints(
        etag if isinstance(etag, str) else None,
        csv,
        fetched if isinstance(fetched, int) else 0,
        parsed,
    )


def _write_cache(state_dir: Path, cached: CachedFingerprints) -> None:
    body = json.dumps({"etag": cached.etag, "csv": cached.csv, "fetched_ms": cached.fetched_ms})
    write_private(Path(state_dir) / FINGERPRINTS_CACHE, (body + "\n").encode())


class CollectorFingerprints:
    """The collector's fingerprints in use: the cached copy, until a refresh replaces it."""

    def __init__(
        self,
        cached: CachedFingerprints | None,
        *,
        collector_urls: Sequence[str],
        proxy: str | None,
        state_dir: Path,
    ) -> None:
        self.cached = cached
        self.collector_urls, self.proxy, self.state_dir = collector_urls, proxy, state_dir
        self._state: str | None = None  # "ok" or the failure, logged when it changes

    @property
    def current(self) -> FingerprintSet | None:
        """The set to measure with; None before any was fetched, or when it is empty."""
        found = None if self.cached is None else self.cached.fingerprints
        return found or None

    async def refresh(
        self, session: aiohttp.ClientSession, spend: Callable[[int], Awaitable[None]]
    ) -> str | None:
        """Fetches the set and caches it; returns why it failed, or None. On failure the
        cached set stays in use; the failure is logged when it first happens or changes."""

        async def spend_answer(body: int) -> None:
            await spend(body + budget.HTTP_OVERHEAD)

        etag = None if self.cached is None else self.cached.etag
        answer = await fetch_fingerprints(
            session, self.collector_urls, etag, proxy=self.proxy, spend=spend_answer
        )
        failure = answer if isinstance(answer, str) and answer != NOT_MODIFIED else None
        if not isinstance(answer, str):
            fresh = CachedFingerprints(
                answer.etag, answer.csv, int(time.time() * 1000), answer.fingerprints
            )
            await self._keep(fresh, answer.source)
        state = failure or "ok"
        if state != self._state:
            if failure is not None:
                cached = self.cached
                keeping = (
                    f"keeping the {len(cached.fingerprints)} cached" if cached else "none cached"
                )
                log.warning("fingerprints: cannot refresh (%s); %s", failure, keeping)
            elif self._state is not None:
                log.info("fingerprints: refreshed from the collector again")
            self._state = state
        return failure

    async def _keep(self, fresh: CachedFingerprints, source: str) -> None:
        # Durable before it is used: a restart during a shutdown finds this version.
        try:
            await asyncio.to_thread(_write_cache, self.state_dir, fresh)
        except OSError as exc:
            log.error("fingerprints: cannot write the cache in %s: %s", self.state_dir, exc)
        if self.cached is None or self.cached.csv != fresh.csv:
            problems = fresh.fingerprints.problems
            skipped = f", {len(problems)} bad rows skipped: {problems[0]}" if problems else ""
            log.info("fingerprints: %d from %s%s", len(fresh.fingerprints), source, skipped)
        self.cached = fresh

"""Agent daemon: the collector's test list, cached on disk (``agent.api.testlist`` fetches it).

With ``testlist.from_collector`` the daemon measures the collector's ``/api/v1/testlist``
besides its local files. :meth:`CollectorTestList.refresh` asks each collector URL in turn,
with the cached ETag, and writes a changed list to ``testlist.json`` in the state directory
before it is used, so an agent restarted during a shutdown (collector unreachable) still
measures it. When to refresh, and whether the bandwidth budget allows it, is the daemon's
business (``agent.daemon.full``).

The list is the collector's say-so, not the operator's: a target whose host is an IP literal
that ``agent.model.addresses.may_reach`` refuses (loopback, the LAN, link-local, CGNAT, ...)
is dropped from it here, unless inside ``testlist.allow_networks``; a named target's addresses
are filtered as they resolve (``agent.daemon.measure``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from agent.api.testlist import NOT_MODIFIED, fetch_testlist
from agent.daemon import budget
from agent.daemon.files import write_private
from agent.model.addresses import IPNetwork, may_reach
from agent.model.measurement import Target, TargetError

__all__ = ["TESTLIST_CACHE", "CachedTestList", "CollectorTestList", "read_testlist_cache"]

log = logging.getLogger("netsonde.agent")

TESTLIST_CACHE = "testlist.json"  # the collector's test list, as last fetched


@dataclass(frozen=True)
class CachedTestList:
    """The collector's test list as last fetched, kept in ``TESTLIST_CACHE``."""

    etag: str | None
    urls: tuple[str, ...]
    fetched_ms: int

    def targets(self) -> list[Target]:
        found = []
        for url in self.urls:
            try:
                found.append(Target.parse(url))
            except TargetError as exc:  # the collector parses with our reader; belt and braces
                log.warning("collector test list: skipped %s", exc)
        return found


def _refused(target: Target, allowed: Sequence[IPNetwork]) -> bool:
    try:
        ipaddress.ip_address(target.host)
    except ValueError:
        return False  # a name: its addresses are judged as they resolve
    return not may_reach(target.host, allowed)


def read_testlist_cache(state_dir: Path) -> CachedTestList | None:
    """The cached list, or None when there is none or it is unreadable (then refetched)."""
    path = Path(state_dir) / TESTLIST_CACHE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable, fetching the test list again: %s", path, exc)
        return None
    urls = data.get("urls") if isinstance(data, dict) else None
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        log.warning("%s: not a test list cache, fetching the test list again", path)
        return None
    etag, fetched = data.get("etag"), data.get("fetched_ms")
    return CachedTestList(
        etag if isinstance(etag, str) else None,
        tuple(urls),
        fetched if isinstance(fetched, int) else 0,
    )


def _write_testlist_cache(state_dir: Path, cached: CachedTestList) -> None:
    body = json.dumps(
        {"etag": cached.etag, "urls": list(cached.urls), "fetched_ms": cached.fetched_ms}
    )
    write_private(Path(state_dir) / TESTLIST_CACHE, (body + "\n").encode())


async def _fetch(
    session: aiohttp.ClientSession,
    collector_urls: Sequence[str],
    cached: CachedTestList | None,
    *,
    state_dir: Path,
    proxy: str | None,
    spend: Callable[[int], Awaitable[None]],
) -> CachedTestList | str:
    """The collector's current list (``cached`` itself when unchanged), or why no URL gave
    one. Every answer's traffic goes to ``spend``, for the bandwidth budget."""

    async def spend_answer(body: int) -> None:
        await spend(body + budget.HTTP_OVERHEAD)

    answer = await fetch_testlist(
        session,
        collector_urls,
        cached.etag if cached is not None else None,
        proxy=proxy,
        spend=spend_answer,
    )
    if answer == NOT_MODIFIED and cached is not None:
        return cached  # unchanged: nothing to write
    if isinstance(answer, str):
        return answer
    fresh = CachedTestList(answer.etag, answer.urls, int(time.time() * 1000))
    # Durable before it is used: a restart during a shutdown finds this version.
    try:
        await asyncio.to_thread(_write_testlist_cache, state_dir, fresh)
    except OSError as exc:
        log.error(
            "testlist: cannot write the cache in %s: %s; using it from memory", state_dir, exc
        )
    if cached is None or cached.urls != fresh.urls:
        log.info("testlist: %d URLs from %s", len(fresh.urls), answer.source)
    return fresh


class CollectorTestList:
    """The collector's list in use: the cached copy, until a refresh replaces it."""

    def __init__(
        self,
        cached: CachedTestList | None,
        *,
        collector_urls: Sequence[str],
        proxy: str | None,
        state_dir: Path,
    ) -> None:
        self.cached = cached
        self.collector_urls, self.proxy, self.state_dir = collector_urls, proxy, state_dir
        self.lock = asyncio.Lock()  # held by the caller around a refresh: one at a time
        self.tried = False  # a refresh was attempted since start; the caller sets it
        self.done = asyncio.Event()  # set by the caller once a refresh attempt has ended
        self._state: str | None = None  # "ok" or the failure, logged when it changes
        self._refused: frozenset[str] = frozenset()  # logged when it changes

    def targets(self, allowed: Sequence[IPNetwork] = ()) -> list[Target]:
        """The list's targets but those whose IP literal may not be reached (``allowed``
        networks excepted). Parses every URL: call in a thread."""
        found = [] if self.cached is None else self.cached.targets()
        kept = [target for target in found if not _refused(target, allowed)]
        refused = frozenset(t.url for t in found) - {t.url for t in kept}
        if refused != self._refused and refused:
            shown = ", ".join(sorted(refused)[:5]) + (", ..." if len(refused) > 5 else "")
            log.warning(
                "collector test list: %d targets refused, non-public addresses (allow them "
                "with testlist.allow_networks): %s",
                len(refused), shown,
            )  # fmt: skip
        self._refused = refused
        return kept

    async def refresh(
        self, session: aiohttp.ClientSession, spend: Callable[[int], Awaitable[None]]
    ) -> str | None:
        """Fetches the list and caches it; returns why it failed, or None. On failure the
        cached list stays in use, and the failure is logged when it first happens or
        changes."""
        fetched = await _fetch(
            session,
            self.collector_urls,
            self.cached,
            state_dir=self.state_dir,
            proxy=self.proxy,
            spend=spend,
        )
        failure = fetched if isinstance(fetched, str) else None
        if not isinstance(fetched, str):
            self.cached = fetched
        state = failure or "ok"
        if state != self._state:
            if failure is not None:
                cached = self.cached
                keeping = f"keeping the cached {len(cached.urls)} URLs" if cached else "none cached"
                log.warning("testlist: cannot refresh (%s); %s", failure, keeping)
            elif self._state is not None:
                log.info("testlist: refreshed from the collector again")
            self._state = state
        return failure

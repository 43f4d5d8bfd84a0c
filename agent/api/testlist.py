"""Agent API, the test-list client: the collector's ``/api/v1/testlist``, asked conditionally.

The answer is JSON ``{"urls": [...]}`` with an ETag; asked with ``If-None-Match`` it is a 304
while the list is unchanged. Each collector URL is tried in turn. What the agent does with
the list (cache it on disk, measure it) is the daemon's business (``agent.daemon.testlist``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp

from agent.api.client import REQUEST_FAILURES, json_or_none, read_capped
from agent.api.errors import failure_reason
from agent.api.paths import TESTLIST_PATH

__all__ = ["MAX_TESTLIST_BYTES", "NOT_MODIFIED", "TestListAnswer", "fetch_testlist"]

NOT_MODIFIED = "not_modified"
# The collector's list of 700 URLs is about 40 kB of JSON, Citizen Lab's biggest country
# list a few times that; an answer over this is abandoned unread.
MAX_TESTLIST_BYTES = 4 << 20


@dataclass(frozen=True)
class TestListAnswer:
    etag: str | None
    urls: tuple[str, ...]
    source: str  # the collector URL that answered


async def fetch_testlist(
    session: aiohttp.ClientSession,
    collector_urls: Sequence[str],
    etag: str | None,
    *,
    proxy: str | None,
    spend: Callable[[int], Awaitable[None]],
) -> TestListAnswer | str:
    """The collector's list; :data:`NOT_MODIFIED` when it still has ``etag``; otherwise
    why no URL gave one. Every answer's body size goes to ``spend``, for a bandwidth budget."""
    headers = {"If-None-Match": etag} if etag else {}
    failures = []
    for base in collector_urls:
        try:
            async with session.get(base + TESTLIST_PATH, headers=headers, proxy=proxy) as resp:
                status, answer_etag = resp.status, resp.headers.get("ETag")
                body = await read_capped(resp, MAX_TESTLIST_BYTES) if status == 200 else b""
        except REQUEST_FAILURES as exc:
            failures.append(f"{base}: {failure_reason(exc)}")
            continue
        await spend(MAX_TESTLIST_BYTES if body is None else len(body))
        if status == 304 and etag:
            return NOT_MODIFIED
        if status != 200:
            failures.append(f"{base}: HTTP {status}")
            continue
        if body is None:
            failures.append(f"{base}: answer over {MAX_TESTLIST_BYTES} bytes")
            continue
        data = json_or_none(body)
        urls = data.get("urls") if isinstance(data, dict) else None
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            failures.append(f"{base}: not a test list answer")
            continue
        return TestListAnswer(answer_etag, tuple(urls), base)
    return "; ".join(failures)

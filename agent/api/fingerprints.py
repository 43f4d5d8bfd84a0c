"""Agent API, the fingerprints client: the collector's ``/api/v1/fingerprints``, asked
conditionally.

The answer is the blockpage fingerprints as OONI CSV with an ETag; asked with
``If-None-Match`` it is a 304 while they are unchanged. The body is read up to
``MAX_FINGERPRINTS_BYTES`` (decompressed: a gzip bomb stops there too) and parsed by the one
loader, ``agent.fingerprints.parse``, in a thread, since it compiles every regexp. Each
collector URL is tried in turn. Caching the set and using it is the caller's business
(``agent.daemon.fingerprints``, ``agent.cli.fingerprints``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp

from agent.api.client import REQUEST_FAILURES, read_capped
from agent.api.errors import failure_reason
from agent.api.paths import FINGERPRINTS_PATH, MAX_FINGERPRINTS_BYTES
from agent.fingerprints import FingerprintSet, parse

__all__ = ["NOT_MODIFIED", "FingerprintsAnswer", "fetch_fingerprints", "parse_answer"]

NOT_MODIFIED = "not_modified"
SOURCE = "collector"  # how the set's rows are named in its problems


@dataclass(frozen=True)
class FingerprintsAnswer:
    etag: str | None
    csv: str  # as served, for a cache
    fingerprints: FingerprintSet
    source: str  # the collector URL that answered


def parse_answer(csv: str) -> FingerprintSet | str:
    """The served CSV parsed, or why it is no fingerprint list at all (a proxy's page, a
    header without the OONI columns). Single bad rows are kept in ``problems``."""
    try:
        return parse(csv, SOURCE)
    except ValueError as exc:
        return f"not a fingerprint list ({exc})"


async def _answer(base: str, body: bytes, etag: str | None) -> FingerprintsAnswer | str:
    try:
        csv = body.decode("utf-8")
    except UnicodeDecodeError:
        return f"{base}: not a fingerprint list (not UTF-8)"
    parsed = await asyncio.to_thread(parse_answer, csv)
    if isinstance(parsed, str):
        return f"{base}: {parsed}"
    return FingerprintsAnswer(etag, csv, parsed, base)


async def fetch_fingerprints(
    session: aiohttp.ClientSession,
    collector_urls: Sequence[str],
    etag: str | None,
    *,
    proxy: str | None = None,
    spend: Callable[[int], Awaitable[None]] | None = None,
) -> FingerprintsAnswer | str:
    """The collector's fingerprints; :data:`NOT_MODIFIED` when it still has ``etag``;
    otherwise why no URL gave them. Every answer's body size goes to ``spend``, for a
    bandwidth budget."""
    headers = {"If-None-Match": etag} if etag else {}
    failures = []
    for base in collector_urls:
        url = base + FINGERPRINTS_PATH
        try:
            async with session.get(url, headers=headers, proxy=proxy) as resp:
                status, answer_etag, kind = resp.status, resp.headers.get("ETag"), resp.content_type
                body = await read_capped(resp, MAX_FINGERPRINTS_BYTES) if status == 200 else b""
        except REQUEST_FAILURES as exc:
            failures.append(f"{base}: {failure_reason(exc)}")
            continue
        if spend is not None:
            await spend(MAX_FINGERPRINTS_BYTES if body is None else len(body))
        if status == 304 and etag:
            return NOT_MODIFIED
        if status != 200:
            failures.append(f"{base}: HTTP {status}")
        elif body is None:
            failures.append(f"{base}: answer over {MAX_FINGERPRINTS_BYTES} bytes")
        elif kind != "text/csv":
            failures.append(f"{base}: not a fingerprint list ({kind or 'no content type'})")
        else:
            answer = await _answer(base, body, answer_etag)
            if isinstance(answer, FingerprintsAnswer):
                return answer
            failures.append(answer)
    return "; ".join(failures)

"""Agent daemon: uploads the spool to the collector as signed batches.

:class:`Uploader` peeks records from the spool, signs them into a batch
(``agent.wire.batch``) and POSTs it to one of the collector URLs, through the proxy if one is
configured. A record leaves the spool only once the collector has acknowledged it (stored or
duplicate), so an upload can fail at any point and simply be repeated. Failures are short
strings, never exceptions, and move on to the next collector URL; :meth:`Uploader.drain`
retries with :class:`~agent.daemon.backoff.Backoff`. Measuring runs in its own jobs and only
writes the spool, so it never waits for any of this.

The spool's connectivity checks ride in the same batches (``"c"``), and in a heartbeat-only
batch when no record waits (or :attr:`Uploader.checks_only` holds the records back), so the
collector hears from the agent at every upload. They leave the spool once the collector says
it stored them all.

Each batch also says what else waits in the spool and the agent's version (``q``, ``r``). A
collector older than those keys refuses them (400, schema): the batch goes again without
them, as do all later ones to that collector, rather than being split and records dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.api.client import (
    MAX_ANSWER_BYTES,
    REQUEST_FAILURES,
    CollectorClient,
    json_or_none,
    read_capped,
)
from agent.api.errors import request_failure
from agent.api.paths import MEASUREMENTS_PATH as MEASUREMENTS_PATH
from agent.api.paths import MSGPACK
from agent.daemon.backoff import Backoff, parse_retry_after
from agent.model import failures
from agent.model.measurement import SiteMeasurement
from agent.wire.batch import (
    DEFAULT_MAX_AGE_MS,
    MAX_CHECKS,
    MAX_MEASUREMENTS,
    REPORTED_VERSION,
    BatchError,
    encode_batch,
)
from agent.wire.record import WireError, decode_measurement

UNREACHABLE = failures.UPLOAD_UNREACHABLE
BAD_RESPONSE = failures.UPLOAD_BAD_RESPONSE
RATE_LIMITED = failures.UPLOAD_RATE_LIMITED
UNAUTHORIZED = failures.UPLOAD_UNAUTHORIZED
REVOKED = failures.UPLOAD_REVOKED
HTTP_PREFIX = failures.UPLOAD_HTTP_PREFIX

# 400 reasons that can only be a record's fault. "signature" and "agent" are the agent's key
# or id: dropping records for those would empty the spool over a configuration mistake.
_RECORD_REASONS = frozenset({"schema", "size", "timestamp", "duplicate_id"})
# Checks this close to the collector's age limit are dropped rather than sent: one of them
# would get the whole batch refused, and the margin covers a batch delayed or a clock apart.
_STALE_MARGIN_MS = 86_400_000

Check = tuple[int, bool]  # (Unix ms, online), as agent.wire.batch carries it


class SpoolEntry(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def record(self) -> bytes: ...  # agent.wire.record.encode_measurement


class Spool(Protocol):
    """What the uploader needs from ``agent.daemon.spool``."""

    async def peek_async(self, limit: int) -> Sequence[SpoolEntry]: ...
    async def ack_async(self, ids: Sequence[str]) -> object: ...  # the count, if any
    async def evictions_async(self) -> int: ...
    async def backlog_async(self) -> tuple[int, int]: ...  # (records, checks) waiting
    async def peek_checks_async(self, limit: int) -> Sequence[Check]: ...
    async def ack_checks_async(self, times: Sequence[int]) -> object: ...
    async def goodput_async(self, times: Sequence[int]) -> Mapping[int, int]: ...


@dataclass
class UploadResult:
    sent: int = 0  # records POSTed, counting each again when a refused batch is split
    acknowledged: int = 0  # stored or duplicate, now deleted from the spool
    dropped: list[str] = field(default_factory=list)  # spool ids refused for good, deleted
    failure: str | None = None
    retry_after: float = 0.0  # the collector's Retry-After, with RATE_LIMITED
    checks_sent: int = 0  # connectivity checks POSTed, again when a refused batch is split
    checks_acknowledged: int = 0  # the collector stored them; deleted from the spool
    checks_dropped: int = 0  # too old, or refused for good; deleted unsent
    # The "checks" count of the collector's last 200, to compare with what was sent.
    stored_checks: object = None

    @property
    def progressed(self) -> bool:
        """Whether anything left the spool: else draining on would only repeat this."""
        return bool(
            self.acknowledged or self.dropped or self.checks_acknowledged or self.checks_dropped
        )


def _decode_entries(
    entries: Sequence[SpoolEntry], dropped: list[str]
) -> list[tuple[str, SiteMeasurement]]:
    batch: list[tuple[str, SiteMeasurement]] = []
    seen: set[str] = set()
    for entry in entries:
        try:
            m = decode_measurement(entry.record)
        except WireError:
            dropped.append(entry.id)  # corrupt on disk: no upload can ever fix it
            continue
        # A measurement id twice would make the whole batch refused; the later copy waits
        # for the next peek and is then acknowledged as a duplicate.
        if m.id not in seen:
            seen.add(m.id)
            batch.append((entry.id, m))
    return batch


class Uploader(CollectorClient):
    """Uploads to ``collector_urls`` in turn over one aiohttp session (``async with``)."""

    def __init__(
        self,
        collector_urls: Sequence[str],
        agent_id: str,
        key: Ed25519PrivateKey,
        *,
        next_seq: Callable[[], int],
        proxy: str | None = None,
        ca_file: str | None = None,
        timeout: float = 60.0,
        batch_size: int = 500,
        backoff: Backoff | None = None,
    ) -> None:
        if not collector_urls:
            raise ValueError("at least one collector URL is needed")
        self.urls = [url.rstrip("/") for url in collector_urls]
        self.agent_id, self.key, self.next_seq = agent_id, key, next_seq
        super().__init__(timeout=timeout, ca_file=ca_file)
        self.proxy = proxy
        self.batch_size = max(1, min(batch_size, MAX_MEASUREMENTS))
        self.backoff = backoff if backoff is not None else Backoff()
        # Heartbeat-only batches: the records wait in the spool (when the day's bandwidth is
        # spent, ``agent.daemon.budget``), the checks still go.
        self.checks_only = False
        self._current = 0
        # Collector URLs that took a batch only without the spool depth and version.
        self._no_status: set[str] = set()

    @property
    def current_url(self) -> str:
        return self.urls[self._current]

    def rotate(self) -> str:
        """Moves on to the next collector URL, wrapping around, and returns it."""
        self._current = (self._current + 1) % len(self.urls)
        return self.current_url

    async def upload_once(self, spool: Spool) -> UploadResult:
        """One batch of the oldest records, with any refused record isolated and dropped."""
        result = UploadResult()
        entries = [] if self.checks_only else await spool.peek_async(self.batch_size)
        checks = await self._fresh_checks(spool, result)
        # Decoding a few hundred records is CPU work: off the event loop, so measuring goes on.
        batch = await asyncio.to_thread(_decode_entries, entries, result.dropped)
        if batch or checks:
            await self._send(spool, batch, result, checks)
        if result.dropped:
            await spool.ack_async(result.dropped)
        sent = result.sent or result.checks_sent
        if result.failure is None and sent and not result.progressed:
            # The collector answered 200 but acknowledged none of it: retrying at once would
            # loop on the same records forever.
            result.failure = BAD_RESPONSE
        return result

    async def _fresh_checks(self, spool: Spool, result: UploadResult) -> list[Check]:
        """The oldest spooled checks a batch can carry; those too old to be accepted are
        deleted here (and counted as dropped) instead."""
        checks = list(await spool.peek_checks_async(MAX_CHECKS))
        oldest = int(time.time() * 1000) - DEFAULT_MAX_AGE_MS + _STALE_MARGIN_MS
        stale = [ms for ms, _ in checks if ms < oldest]
        if stale:
            await spool.ack_checks_async(stale)
            result.checks_dropped += len(stale)
        return [check for check in checks if check[0] >= oldest]

    async def _send(
        self,
        spool: Spool,
        batch: list[tuple[str, SiteMeasurement]],
        result: UploadResult,
        checks: Sequence[Check] = (),
    ) -> None:
        """POSTs ``batch`` with ``checks``; a batch refused for its content is split in halves
        until the bad records (or checks) are alone, and those are dropped. Dropping loses
        data, but one record the collector will never take (too old, too big, unreadable by
        it) would otherwise sit at the head of the spool and block every record behind it
        forever."""
        with_status = self.current_url not in self._no_status
        refused = await self._attempt(spool, batch, result, checks, with_status)
        if refused == "schema" and with_status:
            # Perhaps a collector older than the status keys: the batch again without them,
            # and none to that collector from then on if it takes the batch so.
            url = self.current_url  # a refusal never rotates
            refused = await self._attempt(spool, batch, result, checks, False)
            if not refused and result.failure is None:
                self._no_status.add(url)
        if not refused:
            return
        parts: list[tuple[list[tuple[str, SiteMeasurement]], Sequence[Check]]]
        if batch and checks:
            # Either side may be what was refused: each goes on alone to find out.
            parts = [([], checks), (batch, ())]
        elif len(batch) == 1:
            result.dropped.append(batch[0][0])
            return
        elif len(checks) == 1:
            await spool.ack_checks_async([checks[0][0]])
            result.checks_dropped += 1
            return
        else:
            half, check_half = len(batch) // 2, len(checks) // 2
            parts = [(batch[:half], checks[:check_half]), (batch[half:], checks[check_half:])]
        for part, part_checks in parts:
            await self._send(spool, part, result, part_checks)
            if result.failure is not None:
                return

    async def _attempt(
        self,
        spool: Spool,
        batch: list[tuple[str, SiteMeasurement]],
        result: UploadResult,
        checks: Sequence[Check],
        with_status: bool,
    ) -> str | None:
        """One POST, signed afresh (with the spool's depth besides this batch and the
        version if ``with_status``): why it was refused for its content, else None."""
        evictions = await spool.evictions_async()
        goodput = await spool.goodput_async([ms for ms, _ in checks]) if checks else {}
        depth = None
        if with_status:
            records, waiting = await spool.backlog_async()
            depth = (max(0, records - len(batch)), max(0, waiting - len(checks)))
        try:
            data = await asyncio.to_thread(
                encode_batch, self.agent_id, self.next_seq(), [m for _, m in batch], self.key,
                evictions=evictions, checks=checks, spool=depth, goodput=goodput,
                version=REPORTED_VERSION if with_status else None,
            )  # fmt: skip
        except BatchError:
            return "local"  # the collector would refuse it too; no need to ask it
        result.sent += len(batch)
        result.checks_sent += len(checks)
        result.stored_checks = None
        refused = await self._post(spool, data, batch, result)
        if not refused and result.failure is None and checks:
            await self._ack_checks(spool, checks, result)
        return refused

    async def _ack_checks(
        self, spool: Spool, checks: Sequence[Check], result: UploadResult
    ) -> None:
        """After a 200: the checks leave the spool if the collector says it stored them all."""
        stored = result.stored_checks
        if isinstance(stored, bool) or stored != len(checks):
            # A collector that does not say so (an older one, a proxy's answer): keep them
            # for one that does, rather than lose the evidence of an outage.
            result.failure = BAD_RESPONSE
            self.rotate()
            return
        await spool.ack_checks_async([ms for ms, _ in checks])
        result.checks_acknowledged += len(checks)

    async def _post(
        self,
        spool: Spool,
        data: bytes,
        batch: list[tuple[str, SiteMeasurement]],
        result: UploadResult,
    ) -> str | None:
        """Why the collector refused the batch for its content (its 400 reason, or "size"
        for a 413), None if it did not; other failures are set on ``result`` (and rotate
        to the next URL when another collector might do better)."""
        url = self.current_url + MEASUREMENTS_PATH
        try:
            async with self.session.post(
                url, data=data, headers={"Content-Type": MSGPACK}, proxy=self.proxy
            ) as resp:
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                answer = await read_capped(resp, MAX_ANSWER_BYTES) if status in (200, 400) else b""
        except REQUEST_FAILURES as exc:
            result.failure = request_failure(exc, "upload")
            self.rotate()
            return None
        # Not JSON, or too big or deep to be our collector's: a proxy's page, or worse.
        body: Any = None if answer is None else json_or_none(answer)
        if status == 200:
            ids = _acknowledged(body)
            if ids is None:
                result.failure = BAD_RESPONSE
                self.rotate()
                return None
            acked = [spool_id for spool_id, m in batch if m.id in ids]
            if acked:
                await spool.ack_async(acked)
            result.acknowledged += len(acked)
            result.stored_checks = body.get("checks")
            return None
        reason = body.get("reason") if isinstance(body, dict) else None
        if status == 400 and isinstance(reason, str) and reason in _RECORD_REASONS:
            return reason
        if status == 413:  # over this collector's body limit: smaller batches will fit
            return "size"
        if status == 401:
            result.failure = UNAUTHORIZED
        elif status == 403:
            result.failure = REVOKED
        elif status == 429:
            result.failure, result.retry_after = RATE_LIMITED, retry_after
            self.rotate()
        else:
            result.failure = f"{HTTP_PREFIX}{status}"
            self.rotate()
        return None

    async def drain(self, spool: Spool, stop: asyncio.Event) -> UploadResult:
        """Uploads until the spool is empty or ``stop`` is set, backing off between failures.

        Returns the totals and the last failure; how long it waits after one:
        :meth:`Backoff.after`.
        """
        total = UploadResult()
        streak = 0
        while not stop.is_set():
            result = await self.upload_once(spool)
            total.sent += result.sent
            total.acknowledged += result.acknowledged
            total.dropped += result.dropped
            total.checks_sent += result.checks_sent
            total.checks_acknowledged += result.checks_acknowledged
            total.checks_dropped += result.checks_dropped
            total.failure = result.failure
            if result.failure is None:
                streak = 0
                self.backoff.reset()
                if not result.progressed:
                    break  # nothing was left to send
                continue
            streak += 1
            delay = self.backoff.after(result.failure, streak, len(self.urls), result.retry_after)
            if delay:
                with contextlib.suppress(TimeoutError):  # the delay ran out: try again
                    await asyncio.wait_for(stop.wait(), delay)
        return total


def _acknowledged(body: Any) -> set[str] | None:
    if not isinstance(body, dict):
        return None
    stored, duplicates = body.get("stored"), body.get("duplicates")
    if not isinstance(stored, list) or not isinstance(duplicates, list):
        return None
    return {i for i in stored + duplicates if isinstance(i, str)}

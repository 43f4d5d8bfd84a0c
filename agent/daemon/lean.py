"""Agent daemon, lean idle mode: connectivity checks and heartbeats with the fewest modules.

Between measure runs the full daemon (``agent.daemon.full``) has nothing to do but check that the
collector answers and send those checks as heartbeats, yet its imports (aiohttp, dnspython,
the probes) hold most of its memory, and Python cannot unload a module. So the process execs
itself into this mode (``netsonde-agent run --mode lean``), which imports only asyncio,
apscheduler, sqlite3 (the spool), http.client and ssl, msgpack and cryptography (to sign
batches), and execs back into full mode as soon as anything else is due:
docs/design/005-lean-idle.md.

Jobs, apscheduler 3 on the asyncio loop, blocking work in threads:

- ``connectivity``: GET the collector's health endpoint, as the full daemon's check first
  does; an answer is recorded in the spool like the full daemon records it, no answer
  switches to full mode, whose check also asks the resolvers and which measures through an
  outage;
- ``heartbeat``: the spooled checks in a heartbeat-only batch (``agent.wire.batch``, the one
  batch format), with the persisted batch sequence, counted against the daily bandwidth budget
  (``agent.daemon.budget``); acknowledged checks leave the spool;
- ``due``: at the time a measure run or a test list refresh is due (from the spool's meta,
  ``agent.daemon.state``), switch to full mode.

:func:`run_lean` returns the mode to exec into, or None when stopped.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import ssl
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]

from agent.api.errors import request_failure
from agent.api.paths import HEALTH_PATH, MEASUREMENTS_PATH, MSGPACK, USER_AGENT
from agent.daemon.budget import DailyBudget, upload_bytes
from agent.daemon.disk import open_spool
from agent.daemon.enrollment import read_enrolled
from agent.daemon.goodput import lean_goodput_due_ms
from agent.daemon.jobs import JobRunner
from agent.daemon.spool import Spool, SpoolFull
from agent.daemon.state import (
    FULL,
    LEAN,
    META_CONNECTIVITY,
    META_CONNECTIVITY_AT,
    META_LAST_UPLOAD,
    META_MODE,
    META_UPLOAD_FAILURE,
    META_UPLOADED_BYTES,
    next_batch_seq,
    next_run_ms,
    testlist_due_ms,
)
from agent.model import failures
from agent.wire.batch import (
    DEFAULT_MAX_AGE_MS,
    MAX_CHECKS,
    REPORTED_VERSION,
    BatchError,
    encode_batch,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.daemon.config import AgentConfig

__all__ = ["run_lean"]

log = logging.getLogger("netsonde.agent")

SHUTDOWN_GRACE = 5.0  # seconds for a running job to unwind (its request is in a thread)
# The collector answers in a few hundred bytes; over this (agent.api.client's
# MAX_ANSWER_BYTES, which lean mode cannot import) the answer is abandoned unread.
MAX_RESPONSE_BYTES = 1 << 20
UPLOAD_TIMEOUT = 60.0  # as agent.daemon.upload.Uploader's
# Checks this close to the collector's age limit could get a batch refused: full mode's
# uploader drops those (agent.daemon.upload), so lean mode hands them over to it.
_STALE_MS = DEFAULT_MAX_AGE_MS - 2 * 86_400_000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class _Collector:
    """Blocking http.client requests to the collector: call them in a thread. Only
    ``proxy`` (``collector.proxy``) carries the uploads, as in the full daemon, where the
    connectivity check goes direct."""

    def __init__(self, urls: tuple[str, ...], ca_file: str | None, proxy: str | None) -> None:
        self.urls = [url.rstrip("/") for url in urls]
        self.ca_file, self.proxy = ca_file, proxy
        self.current = 0
        self._context: ssl.SSLContext | None = None

    def context(self) -> ssl.SSLContext:
        # Built on first use, in the worker thread: loading the system's CA store takes a
        # moment. The same anchors as agent.api.client.trust.
        if self._context is None:
            context = ssl.create_default_context()
            if self.ca_file is not None:
                context.load_verify_locations(cafile=self.ca_file)
            self._context = context
        return self._context

    def rotate(self) -> None:
        self.current = (self.current + 1) % len(self.urls)

    def request(
        self, method: str, path: str, body: bytes | None, timeout: float, *, proxied: bool
    ) -> tuple[int, bytes]:
        """(status, body); raises OSError or http.client.HTTPException for what the network
        or a peer can do (``timeout`` is per socket operation, as http.client has it)."""
        url = urlsplit(self.urls[self.current] + path)
        host, https = url.hostname or "", url.scheme == "https"
        port = url.port or (443 if https else 80)
        target = url.path + (f"?{url.query}" if url.query else "")
        proxy = urlsplit(self.proxy) if proxied and self.proxy else None
        connection: http.client.HTTPConnection
        if proxy is not None:
            proxy_host, proxy_port = proxy.hostname or "", proxy.port or 80
            if https:
                # CONNECT through the proxy, then TLS with the collector itself.
                connection = http.client.HTTPSConnection(
                    proxy_host, proxy_port, timeout=timeout, context=self.context()
                )
                connection.set_tunnel(host, port)
            else:
                connection = http.client.HTTPConnection(proxy_host, proxy_port, timeout=timeout)
                target = url.geturl()  # a plain HTTP proxy takes the absolute URL
        elif https:
            connection = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=self.context()
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        headers = {"User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = MSGPACK
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            if (response.length or 0) > MAX_RESPONSE_BYTES:
                raise http.client.HTTPException(f"an answer of {response.length} bytes")
            # read(n) reads as it goes, chunked encoding included: never more than n + 1.
            answer = response.read(MAX_RESPONSE_BYTES + 1)
            if len(answer) > MAX_RESPONSE_BYTES:
                raise http.client.HTTPException(f"an answer over {MAX_RESPONSE_BYTES} bytes")
            return response.status, answer
        finally:
            connection.close()


class _Lean:
    def __init__(
        self,
        config: AgentConfig,
        spool: Spool,
        agent_id: str,
        key: Ed25519PrivateKey,
        stop: asyncio.Event,
        budget: DailyBudget,
    ) -> None:
        self.config, self.spool, self.agent_id, self.key = config, spool, agent_id, key
        self.stop, self.budget = stop, budget
        ca_file = None if config.ca_file is None else str(config.ca_file)
        self.collector = _Collector(config.collector.urls, ca_file, config.collector.proxy)
        # The full daemon's control client timeout, which its connectivity check uses.
        self.check_timeout = max(10.0, 2 * config.probe.timeout)
        self.next_mode: str | None = None
        # The spool depth and version in each batch, until a collector refuses them.
        self.with_status = True
        self.jobs = JobRunner(
            {"connectivity": self.connectivity, "heartbeat": self.heartbeat, "due": self.due},
            stop,
            error_format="lean %s: %s",
            # Full mode knows what to do on a full disk (agent.daemon.disk); it never idles
            # here while the disk is full, so this does not switch back and forth.
            on_full=lambda exc, name: self.switch(f"disk full ({name}: {exc})"),
        )

    def switch(self, why: str) -> None:
        if self.next_mode is None and not self.stop.is_set():
            log.info("lean: %s; switching to full mode", why)
            self.next_mode = FULL
            self.stop.set()

    # -- jobs ------------------------------------------------------------------------------

    def _reachable(self) -> bool:
        try:
            status, _ = self.collector.request(
                "GET", HEALTH_PATH, None, self.check_timeout, proxied=False
            )
        except (OSError, http.client.HTTPException):
            return False
        return status == 200

    async def connectivity(self) -> None:
        checked_ms = _now_ms()  # dated by its start, as in full mode
        if not await asyncio.to_thread(self._reachable):
            # Not recorded here: full mode checks again at once, the resolvers too, and
            # records what it finds; it also measures through the outage.
            self.switch("the collector does not answer")
            return
        if evicted := await self.spool.add_check_async(checked_ms, True):
            log.warning("connectivity: spool full, %d oldest checks dropped unsent", evicted)
        await asyncio.to_thread(self._record_online)
        self.jobs.wake("heartbeat")

    def _record_online(self) -> None:
        self.spool.set_meta(META_CONNECTIVITY, "online")
        self.spool.set_meta(META_CONNECTIVITY_AT, _now_ms())

    async def heartbeat(self) -> None:
        checks = await self.spool.peek_checks_async(MAX_CHECKS)
        if not checks:
            return
        if checks[0][0] < _now_ms() - _STALE_MS:
            self.switch("spooled checks are about to age out")
            return
        try:
            data = await asyncio.to_thread(self._sign, checks)
        except BatchError as exc:
            self.switch(f"heartbeat batch not encodable: {exc}")
            return
        await self.budget.spend(upload_bytes(len(data), 0))
        await asyncio.to_thread(self.spool.bump_meta, META_UPLOADED_BYTES, len(data))
        try:
            status, body = await asyncio.to_thread(
                self.collector.request, "POST", MEASUREMENTS_PATH, data, UPLOAD_TIMEOUT,
                proxied=True,
            )  # fmt: skip
        except (OSError, http.client.HTTPException) as exc:
            await self._upload_failed(request_failure(exc, "upload"))
            return
        if status in (400, 413) and self.with_status:
            # Perhaps a collector older than the status keys (agent.daemon.upload): the
            # checks go once more without them, as they will for as long as this mode runs.
            self.with_status = False
            await self.heartbeat()
            return
        if status in (400, 413):
            # Refused for its content: full mode's uploader splits the batch to find and
            # drop the check at fault, which is not worth repeating here.
            self.switch(f"the collector refused a heartbeat batch (HTTP {status})")
            return
        if status != 200:
            await self._upload_failed(f"{failures.UPLOAD_HTTP_PREFIX}{status}")
            return
        try:
            answer = json.loads(body)
        except (ValueError, RecursionError):  # a proxy's page, or nesting too deep to parse
            answer = None
        stored = answer.get("checks") if isinstance(answer, dict) else None
        if isinstance(stored, bool) or stored != len(checks):
            # As in full mode: keep the checks for a collector that says it stored them.
            await self._upload_failed(failures.UPLOAD_BAD_RESPONSE)
            return
        await self.spool.ack_checks_async([ms for ms, _ in checks])
        await asyncio.to_thread(self._record_upload, "")

    def _sign(self, checks: list[tuple[int, bool]]) -> bytes:
        seq = next_batch_seq(self.spool)  # the sequence full mode numbers its batches with
        evictions = self.spool.evictions()
        spool, version = None, None
        if self.with_status:
            records, waiting = self.spool.backlog()
            spool, version = (records, max(0, waiting - len(checks))), REPORTED_VERSION
        # Samples full mode took (agent.daemon.goodput) leave with their checks from here too.
        goodput = self.spool.goodput([ms for ms, _ in checks])
        return encode_batch(
            self.agent_id, seq, [], self.key, evictions=evictions, checks=checks, spool=spool,
            version=version, goodput=goodput,
        )  # fmt: skip

    async def _upload_failed(self, failure: str) -> None:
        log.warning("heartbeat: %s", failure)
        self.collector.rotate()
        await asyncio.to_thread(self.spool.set_meta, META_UPLOAD_FAILURE, failure)

    def _record_upload(self, failure: str) -> None:
        self.spool.set_meta(META_LAST_UPLOAD, _now_ms())
        self.spool.set_meta(META_UPLOAD_FAILURE, failure)

    def due_ms(self) -> int | None:
        """When full mode is next needed (Unix ms; now or earlier: at once), None if never
        by the clock alone. Reads the spool: call in a thread."""
        times = [
            next_run_ms(self.spool, self.config.schedule),
            testlist_due_ms(self.spool, self.config),
            lean_goodput_due_ms(self.spool, self.config),  # full mode takes the samples
        ]
        records, _ = self.spool.depth()
        if records:
            if not self.budget.spent():
                return 0  # records waiting, and they may go
            # Held back by the day's budget until 00:00 UTC, when full mode uploads them.
            times.append((_now_ms() // 86_400_000 + 1) * 86_400_000)
        # No run ever: full mode measures at first start; never leave that undone here.
        due = [t for t in times if t is not None]
        return min(due) if due and times[0] is not None else 0

    async def due(self) -> None:
        due = await asyncio.to_thread(self.due_ms)
        if due is None or due <= _now_ms():
            self.switch("a measure run, a test list refresh or an upload is due")
            return
        assert self.jobs.scheduler is not None
        self.jobs.scheduler.add_job(
            self.jobs.run, DateTrigger(run_date=_when(due), timezone=UTC), args=("due",),
            id="due", name="due", replace_existing=True, misfire_grace_time=None,
        )  # fmt: skip

    # -- lifetime --------------------------------------------------------------------------

    async def run(self) -> str | None:
        schedule = self.config.schedule
        now = datetime.now(UTC)
        # The next check keeps the rhythm of the last one, full mode's included.
        last = await asyncio.to_thread(self.spool.get_meta, META_CONNECTIVITY_AT)
        first_check = now
        if isinstance(last, int):
            first_check = max(now, _when(last + int(schedule.connectivity_check * 1000)))
        self.jobs.start(
            [
                ("connectivity", schedule.connectivity_check, first_check),
                ("heartbeat", schedule.upload, now),
            ],
            schedule.jitter,
        )
        await self.due()  # at once, or scheduled for when it will be
        try:
            await self.stop.wait()
        finally:
            # A request in a worker thread cannot be cancelled; its task can, and the
            # thread's socket timeout bounds the rest.
            await self.jobs.shutdown(SHUTDOWN_GRACE)
        return self.next_mode


async def run_lean(config: AgentConfig, *, stop: asyncio.Event) -> str | None:
    """Lean idle mode until ``stop`` is set (returns None) or full mode is needed (returns
    ``FULL``); the spool is closed either way. Raises :class:`DaemonError` before starting
    if the agent is not enrolled or its key or spool cannot be used; waits for a full disk
    to make room for the spool (``agent.daemon.disk.open_spool``)."""
    state, key = read_enrolled(config)
    spool = await open_spool(config, stop)
    if spool is None:
        return None
    try:
        budget = await asyncio.to_thread(DailyBudget, config.limits.daily_bandwidth, spool)
        try:
            await asyncio.to_thread(spool.set_meta, META_MODE, LEAN)
        except SpoolFull:
            return FULL  # which waits for space; lean mode cannot store its checks
        log.info("agent %s idle: lean mode", state.agent_id)
        return await _Lean(config, spool, state.agent_id, key, stop, budget).run()
    finally:
        await asyncio.to_thread(spool.close)

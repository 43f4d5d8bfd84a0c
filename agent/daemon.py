"""Agent daemon: enrolment and the long-running scheduler that measures, spools and uploads.

:func:`enroll` creates the agent's key in the state directory and registers its public half
with the collector; the agent id it gets back is saved next to the key in ``agent.json``.

:func:`run_daemon` runs three apscheduler jobs on the caller's event loop until ``stop`` is set:

- ``measure``: the test list, every ``schedule.interval`` with jitter, first right at start;
  every result goes to the spool before anything else happens to it;
- ``upload``: drains the spool to the collector (``agent.upload``), with backoff;
- ``connectivity``: whether this network reaches the outside, kept in the spool's meta table
  so ``netsonde-agent status`` can show it without talking to the daemon.

Measuring never waits for the collector: the jobs share nothing but the spool.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from agent import __version__
from agent.config import AgentConfig
from agent.control import HTTPControl
from agent.fingerprints import FingerprintFileError, FingerprintSet, load
from agent.identity import IdentityError, create_key, load_key, public_key_bytes
from agent.measurement import Target
from agent.probes.connectivity import CachedCheck, check
from agent.site import ProbeConfig, measure_site
from agent.spool import Spool, SpoolError
from agent.targets import read_test_list
from agent.upload import Uploader
from agent.wire import encode_measurement

__all__ = [
    "KEY_FILE",
    "SPOOL_FILE",
    "STATE_FILE",
    "AgentState",
    "DaemonError",
    "enroll",
    "read_state",
    "run_daemon",
]

log = logging.getLogger("netsonde.agent")

ENROLL_PATH = "/api/v1/enroll"
KEY_FILE = "agent.key"
STATE_FILE = "agent.json"
SPOOL_FILE = "spool.db"
SHUTDOWN_GRACE = 5.0  # seconds for cancelled jobs to unwind; the whole stop must fit in 10

# Spool meta keys, shared with ``netsonde-agent status``.
META_LAST_RUN = "last_run_ms"
META_LAST_RUN_RESULTS = "last_run_results"
META_LAST_RUN_FAILED = "last_run_failed"
META_LAST_UPLOAD = "last_upload_ms"
META_UPLOAD_FAILURE = "last_upload_failure"
META_CONNECTIVITY = "connectivity"
META_CONNECTIVITY_AT = "connectivity_checked_ms"
META_BATCH_SEQ = "batch_seq"

_REQUEST_FAILURES = (aiohttp.ClientError, TimeoutError, OSError)


class DaemonError(Exception):
    """The daemon or enrolment cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class AgentState:
    agent_id: str
    collector: str  # the URL it enrolled with


def _now_ms() -> int:
    return int(time.time() * 1000)


def read_state(state_dir: Path) -> AgentState:
    path = Path(state_dir) / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DaemonError(
            f"{path}: this agent is not enrolled; run: netsonde-agent enroll "
            "--collector URL --token TOKEN"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DaemonError(f"{path}: cannot read the agent state: {exc}") from None
    agent_id = data.get("agent_id") if isinstance(data, dict) else None
    collector = data.get("collector") if isinstance(data, dict) else None
    if not isinstance(agent_id, str) or not agent_id or not isinstance(collector, str):
        raise DaemonError(f"{path}: not an agent state file (no agent_id or collector)")
    return AgentState(agent_id, collector)


def _write_state(state_dir: Path, state: AgentState) -> None:
    path = state_dir / STATE_FILE
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    body = json.dumps({"agent_id": state.agent_id, "collector": state.collector}, indent=2)
    try:
        # 0600 from creation, and renamed into place so a crash never leaves half a file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise DaemonError(f"cannot write the agent state {path}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


async def enroll(
    collector_url: str,
    token: str,
    state_dir: Path,
    *,
    ca_file: str | None = None,
    timeout: float = 30.0,
) -> AgentState:
    """Registers this agent with the collector and saves its id; returns the saved state.

    An agent already enrolled is refused: enrolling again would orphan its spooled results
    under the old id. A key left by an enrolment that failed half-way is reused, so retrying
    with a fresh token just works.
    """
    state_dir = Path(state_dir)
    if (state_dir / STATE_FILE).exists():
        raise DaemonError(
            f"already enrolled ({state_dir / STATE_FILE} exists); remove the state directory "
            "to enrol this machine as a new agent"
        )
    key_path = state_dir / KEY_FILE
    try:
        key = load_key(key_path) if key_path.exists() else create_key(key_path)
    except IdentityError as exc:
        raise DaemonError(str(exc)) from exc
    url = collector_url.rstrip("/")
    payload = {"token": token, "public_key": base64.b64encode(public_key_bytes(key)).decode()}
    connector = aiohttp.TCPConnector(ssl=_ssl_context(ca_file))
    try:
        async with (
            aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=timeout),
                headers={"User-Agent": f"netsonde-agent/{__version__}"},
            ) as session,
            session.post(url + ENROLL_PATH, json=payload) as resp,
        ):
            status = resp.status
            text = await resp.text()
    except _REQUEST_FAILURES as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise DaemonError(f"cannot reach the collector at {url}: {reason}") from None
    body = _json_or_none(text)
    if status != 201:
        message = body.get("error") if isinstance(body, dict) else None
        detail = message if isinstance(message, str) else f"HTTP {status}"
        raise DaemonError(f"the collector at {url} refused the enrolment: {detail}")
    agent_id = body.get("agent_id") if isinstance(body, dict) else None
    if not isinstance(agent_id, str) or not agent_id:
        raise DaemonError(f"the collector at {url} answered 201 without an agent_id")
    state = AgentState(agent_id, url)
    _write_state(state_dir, state)
    return state


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:  # a proxy's HTML page, say
        return None


def _ssl_context(ca_file: str | None) -> Any:
    import ssl

    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


def _load_fingerprints(paths: tuple[Path, ...]) -> FingerprintSet | None:
    if not paths:
        return None
    try:
        fingerprints = load(paths)
    except FingerprintFileError as exc:
        # Blockpage matching only sharpens verdicts; measuring without it beats not measuring.
        log.warning("%s; measuring without blockpage fingerprints", exc)
        return None
    for problem in fingerprints.problems:
        log.warning("fingerprints: skipped %s", problem)
    return fingerprints


class _Daemon:
    def __init__(
        self,
        config: AgentConfig,
        spool: Spool,
        control: HTTPControl,
        uploader: Uploader,
        probe: ProbeConfig,
        stop: asyncio.Event,
    ) -> None:
        self.config, self.spool, self.control, self.uploader = config, spool, control, uploader
        self.probe, self.stop = probe, stop
        self.is_online = CachedCheck(
            control,
            probe.resolvers,
            probe.benign_name,
            probe.timeout,
            resolv_conf=probe.resolv_conf,
        )
        self._running: set[asyncio.Task[Any]] = set()
        self.scheduler: AsyncIOScheduler | None = None

    # -- jobs ------------------------------------------------------------------------------

    async def job(self, name: str) -> None:
        """Every job goes through here, so shutdown knows which tasks to wait for."""
        jobs: dict[str, Callable[[], Awaitable[None]]] = {
            "measure": self.measure,
            "upload": self.upload,
            "connectivity": self.connectivity,
        }
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await jobs[name]()
        except SpoolError as exc:
            # A full disk or a broken spool: log it and let the next run try again.
            log.error("%s: %s", name, exc)
        finally:
            if task is not None:
                self._running.discard(task)

    def targets(self) -> list[Target]:
        # Re-read each run, so an edited test list applies without a restart.
        targets: list[Target] = []
        seen: set[str] = set()
        for path in self.config.testlist.files:
            found, problems = read_test_list(path)
            for problem in problems:
                log.warning("test list: skipped %s", problem)
            for target in found:
                if target.url not in seen:
                    seen.add(target.url)
                    targets.append(target)
        return targets

    async def measure(self) -> None:
        targets = self.targets()
        if not targets:
            log.warning("measure: the test list is empty; nothing measured")
            return
        semaphore = asyncio.Semaphore(self.config.probe.concurrency)

        async def one(target: Target) -> None:
            async with semaphore:
                m = await measure_site(target, self.probe, self.control, is_online=self.is_online)
            # Spooled the moment it exists: a crash or shutdown later loses nothing measured.
            await self.spool.add_async(encode_measurement(m), m.id, m.started_ms)

        started = _now_ms()
        log.info("measure: %d targets", len(targets))
        # return_exceptions: one target's bug must not throw away the others' results.
        outcomes = await asyncio.gather(*(one(t) for t in targets), return_exceptions=True)
        failed = 0
        for target, outcome in zip(targets, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                failed += 1
                log.error("measure: %s: not measured: %r", target.url, outcome, exc_info=outcome)
        await asyncio.to_thread(self._record_run, started, len(targets) - failed, failed)
        log.info("measure: done, %d spooled, %d failed", len(targets) - failed, failed)
        self.wake("upload")

    def _record_run(self, started: int, results: int, failed: int) -> None:
        self.spool.set_meta(META_LAST_RUN, started)
        self.spool.set_meta(META_LAST_RUN_RESULTS, results)
        self.spool.set_meta(META_LAST_RUN_FAILED, failed)

    async def upload(self) -> None:
        result = await self.uploader.drain(self.spool, self.stop)
        if result.failure is None:
            await asyncio.to_thread(self.spool.set_meta, META_LAST_UPLOAD, _now_ms())
        else:
            log.warning("upload: %s (%d acknowledged)", result.failure, result.acknowledged)
        await asyncio.to_thread(self.spool.set_meta, META_UPLOAD_FAILURE, result.failure or "")

    async def connectivity(self) -> None:
        # The collector first, on its own: the resolver checks would send DNS traffic that
        # is only needed when the collector cannot be reached.
        online = await self.control.reachable()
        if not online:
            online = await check(
                None,
                self.probe.resolvers,
                self.probe.benign_name,
                5.0,
                resolv_conf=self.probe.resolv_conf,
            )
        self.is_online.remember(online)
        state = "online" if online else "offline"
        previous = await asyncio.to_thread(self.spool.get_meta, META_CONNECTIVITY)
        await asyncio.to_thread(self._record_connectivity, state)
        if previous != state:
            log.info("connectivity: %s", state)
            if online:
                self.wake("upload")  # back from a shutdown: send what piled up

    def _record_connectivity(self, state: str) -> None:
        self.spool.set_meta(META_CONNECTIVITY, state)
        self.spool.set_meta(META_CONNECTIVITY_AT, _now_ms())

    def next_seq(self) -> int:
        # Persisted so batch numbers keep growing across restarts; a tiny write per batch.
        previous = self.spool.get_meta(META_BATCH_SEQ)
        seq = (previous if isinstance(previous, int) else 0) + 1
        self.spool.set_meta(META_BATCH_SEQ, seq)
        return seq

    def wake(self, job_id: str) -> None:
        """Runs a job now instead of at its next interval (skipped if it is running)."""
        if self.scheduler is not None and self.scheduler.running and not self.stop.is_set():
            self.scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))

    # -- lifetime --------------------------------------------------------------------------

    async def run(self) -> None:
        schedule = self.config.schedule
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        now = datetime.now(UTC)
        for name, every, first in (
            ("measure", schedule.interval, now),
            ("connectivity", schedule.connectivity_check, now),
            ("upload", schedule.upload, None),
        ):
            scheduler.add_job(
                self.job,
                IntervalTrigger(seconds=every, jitter=every * schedule.jitter, timezone=UTC),
                args=(name,),
                id=name,
                name=name,
                # One run at a time; runs missed while busy or asleep collapse into one, and
                # a run late by up to half an interval is still worth doing.
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(every / 2)),
                **({"next_run_time": first} if first is not None else {}),
            )
        self.scheduler = scheduler
        scheduler.start()
        try:
            await self.stop.wait()
        finally:
            # wait=False: a test list run can take many minutes; its results so far are
            # already spooled, so cancelling it loses nothing.
            scheduler.shutdown(wait=False)
            running = list(self._running)
            for task in running:
                task.cancel()
            if running:
                _, pending = await asyncio.wait(running, timeout=SHUTDOWN_GRACE)
                if pending:
                    log.warning("shutdown: %d jobs did not stop in time", len(pending))


async def run_daemon(
    config: AgentConfig, *, stop: asyncio.Event, resolv_conf: str | None = None
) -> None:
    """Agent daemon: measures, spools and uploads on a schedule until ``stop`` is set.

    Raises :class:`DaemonError` before starting if the agent is not enrolled or its key or
    spool cannot be used. Returns within a few seconds of ``stop``, with the spool closed.
    ``resolv_conf`` replaces ``/etc/resolv.conf`` for the system resolver (tests point it at
    a loopback server).
    """
    state = read_state(config.state_dir)
    try:
        key = load_key(config.state_dir / KEY_FILE)
    except IdentityError as exc:
        raise DaemonError(str(exc)) from exc
    try:
        spool = Spool.open(config.state_dir / SPOOL_FILE, max_bytes=config.limits.spool_size)
    except SpoolError as exc:
        raise DaemonError(str(exc)) from exc
    try:
        probe = config.probe_config(_load_fingerprints(config.probe.fingerprints))
        if resolv_conf is not None:
            probe = dataclasses.replace(probe, resolv_conf=resolv_conf)
        ca_file = None if config.ca_file is None else str(config.ca_file)
        async with AsyncExitStack() as stack:
            # The collector runs a whole site test before answering, so it gets longer.
            control = await stack.enter_async_context(
                HTTPControl(
                    config.collector.urls[0],
                    timeout=max(10.0, 2 * config.probe.timeout),
                    ca_file=ca_file,
                )
            )
            daemon: _Daemon
            uploader = await stack.enter_async_context(
                Uploader(
                    config.collector.urls,
                    state.agent_id,
                    key,
                    next_seq=lambda: daemon.next_seq(),
                    proxy=config.collector.proxy,
                    ca_file=ca_file,
                )
            )
            daemon = _Daemon(config, spool, control, uploader, probe, stop)
            log.info(
                "agent %s started: %d collector URLs, every %.0f s",
                state.agent_id,
                len(config.collector.urls),
                config.schedule.interval,
            )
            await daemon.run()
    finally:
        # close() takes the spool's lock, so a record being written in a worker thread is
        # finished (durably) before the file is closed.
        await asyncio.to_thread(spool.close)
    log.info("agent stopped")

"""Agent daemon: the long-running scheduler that measures, spools and uploads.

:func:`run_daemon` runs these apscheduler jobs on the caller's event loop until ``stop`` is set:

- ``measure``: the test list, every ``schedule.interval`` with jitter, first right at start;
  every result goes to the spool before anything else happens to it;
- ``upload``: drains the spool to the collector (``agent.daemon.upload``), with backoff;
- ``connectivity``: whether this network reaches the outside, kept in the spool's meta table
  so ``netsonde-agent status`` can show it without talking to the daemon; every few checks
  also a benign goodput sample (``agent.daemon.goodput``), for degraded-network periods;
- ``throttle`` (with ``throttle.enabled``): the throttle test on a bounded subset of targets,
  daily by default (``agent.daemon.throttle``);
- ``trace`` (with ``trace.enabled``): after each measure run, a trace of its newly blocked
  targets, each (URL, verdict) once a day by default (``agent.daemon.trace``);
- ``testlist``: refreshes the collector's test list and fingerprints (``agent.daemon.testlist``,
  ``agent.daemon.fingerprints``) at start, in the background, then every ``testlist.refresh``.
  The configuration file itself is read once, at start.

The agent must be enrolled first (``agent.daemon.enrollment``). With
``limits.daily_bandwidth`` set, measuring, uploading records and test-list fetches stop for the
rest of the UTC day once the day's estimated traffic (``agent.daemon.budget``) reaches it; the
connectivity checks, and the heartbeat-only batches that carry them to the collector, go on.

Measuring does not wait for the collector: the jobs share nothing but the spool. A run uses
the cached collector list and the local files at once; only a first start with no list cached
waits for the first fetch, :data:`FIRST_FETCH_WAIT` seconds at most. On the measuring path the
collector is otherwise asked only for controls, each bounded by the control client's timeout
(``max(10 s, 2 x probe.timeout)``), which a shutdown costs once per target at most. What
the jobs use besides the spool is opened at start (``agent.daemon.startup``). What a run
measures, and with which settings: ``agent.daemon.measure``; what it leaves in the spool's
meta table: ``agent.daemon.runs``; a full disk: ``agent.daemon.disk``.

Run by ``netsonde-agent run``, it also stops by itself once nothing is due for a while, and
the process execs into lean idle mode (``agent.daemon.lean``, docs/design/005-lean-idle.md),
which execs back into this when a run is due or the collector stops answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from agent.daemon.budget import BUDGET_SPENT, PAUSED
from agent.daemon.config import AgentConfig
from agent.daemon.disk import Disk, open_spool
from agent.daemon.enrollment import read_enrolled
from agent.daemon.goodput import Goodput
from agent.daemon.jobs import JobRunner
from agent.daemon.measure import Measurer, remote_probe, run_targets
from agent.daemon.runs import due_from_spool, idle_for, record_run, why
from agent.daemon.spool import Spool, SpoolFull
from agent.daemon.startup import Shared, open_shared
from agent.daemon.state import (
    FULL,
    LEAN,
    META_CONNECTIVITY,
    META_CONNECTIVITY_AT,
    META_LAST_UPLOAD,
    META_MODE,
    META_REFUSED,
    META_TESTLIST_FAILURE,
    META_TESTLIST_FETCHED,
    META_TESTLIST_TRIED,
    META_UPLOAD_FAILURE,
    META_UPLOADED_BYTES,
)
from agent.daemon.throttle import ThrottleRuns
from agent.daemon.trace import TraceRuns
from agent.probes.connectivity import CachedCheck, check

__all__ = ["FIRST_FETCH_WAIT", "run_daemon"]

log = logging.getLogger("netsonde.agent")

SHUTDOWN_GRACE = 5.0  # seconds for cancelled jobs to unwind; the whole stop must fit in 10
# Seconds the first run waits for the collector's list when none is cached: enough for a
# collector that answers, short enough not to matter in a shutdown. The list, when it comes
# later, gets a run of its own at once.
FIRST_FETCH_WAIT = 5.0


_PAUSED_JOBS = "measuring and uploading results paused (heartbeats go on)"


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Daemon:
    def __init__(
        self,
        config: AgentConfig,
        spool: Spool,
        shared: Shared,
        stop: asyncio.Event,
        *,
        may_idle: bool = False,
        resumed: bool = False,
    ) -> None:
        self.config, self.spool, self.stop = config, spool, stop
        self.probe, self.control, self.uploader = shared.probe, shared.control, shared.uploader
        self.budget, self.testlist = shared.budget, shared.testlist
        self.fingerprints = shared.fingerprints
        self.is_online = CachedCheck(
            self.control,
            self.probe.resolvers,
            self.probe.benign_name,
            self.probe.timeout,
            resolv_conf=self.probe.resolv_conf,
        )
        self.disk = Disk(config.state_dir)
        self.goodput = Goodput(config, self.control, self.budget, spool, self.probe.resolv_conf)
        self.throttle = ThrottleRuns(
            config, self.control, self.budget, spool, self.disk, self.probe.resolv_conf,
            busy=lambda: self.measuring,
        )  # fmt: skip
        self.traces = TraceRuns(
            config, self.budget, spool, self.disk, lambda: self.fingerprints.current
        )
        self.measurer = Measurer(
            self.probe,
            remote_probe(self.probe, config.testlist.allow_networks),
            self.control, self.is_online, spool, self.budget, self.disk,
            config.probe.concurrency, on_result=self.traces.offer,
        )  # fmt: skip
        self.jobs = JobRunner(
            {
                "measure": self.measure,
                "upload": self.upload,
                "connectivity": self.connectivity,
                "testlist": self.refresh_testlist,
                "throttle": self.throttle.run,
                "trace": self.traces.run,
            },
            stop,
            # Lean idle mode, if this daemon may exec into it: asked as each job ends, the
            # moment the daemon may have fallen idle.
            after=self.maybe_idle if may_idle else None,
            on_full=self.disk.failed,
        )
        # A run made without the collector's list, none cached and the first fetch slow,
        # is made again as soon as the list comes; ``measuring`` defers that to its end.
        self.listless = self.measuring = False
        # Whether it was exec'd from lean mode (so runs are scheduled from the spool, not at
        # once), and the collector's last answer, since only a reachable collector lets lean
        # mode's check stand alone.
        self.resumed = resumed
        self.collector_reachable = False
        self.next_mode: str | None = None

    # -- jobs ------------------------------------------------------------------------------

    async def maybe_idle(self, current: asyncio.Task[Any] | None) -> None:
        """Stops the daemon to exec into lean mode (``run_daemon`` returns LEAN) when nothing
        is due for a while: no other job running, the collector answering, nothing due
        (``agent.daemon.runs.idle_for``)."""
        if self.stop.is_set() or self.jobs.others_running(current) or not self.collector_reachable:
            return
        if self.disk.full:
            return  # lean mode could not store its checks, and would hand straight back
        idle = await idle_for(self.config, self.jobs, self.spool, self.budget)
        if idle is None or self.stop.is_set() or self.jobs.others_running(current):
            return  # something is due, or a job started while the spool was read
        log.info("idle: nothing due within %.0f s; switching to lean mode", idle)
        self.next_mode = LEAN
        self.stop.set()

    async def measure(self) -> None:
        started = _now_ms()
        if await asyncio.to_thread(self.disk.blocks_measuring, self.spool):
            return  # logged once; the connectivity job wakes this when there is room again
        if self.budget.spent():
            self.budget.log_exhausted(_PAUSED_JOBS)
            await asyncio.to_thread(self._record_run, started, 0, 0, f"all: {BUDGET_SPENT}")
            return
        await self._first_list()
        self.measuring = True
        try:
            targets = await asyncio.to_thread(run_targets, self.config, self.testlist)
            self.listless = self.config.testlist.from_collector and self.testlist.cached is None
            if not targets:
                log.warning("measure: the test list is empty; nothing measured")
                await asyncio.to_thread(self._record_run, started, 0, 0, "the test list is empty")
                return
            log.info("measure: %d targets", len(targets))
            totals = await self.measurer.with_fingerprints(self.fingerprints.current).run(targets)
            await asyncio.to_thread(
                self._record_run, started, totals.spooled, totals.failed, why(totals)
            )
        finally:
            self.measuring = False
        log.info(
            "measure: done, %d spooled, %d failed, %d skipped",
            totals.spooled, totals.failed, totals.skipped + totals.full,
        )  # fmt: skip
        if totals.skipped:
            self.budget.log_exhausted(_PAUSED_JOBS)
        if self.config.trace.enabled:
            self.jobs.wake("trace")  # agent.daemon.trace: the run's newly blocked targets
        self.jobs.wake("upload")
        self._list_arrived()

    async def _first_list(self) -> None:
        """Waits up to :data:`FIRST_FETCH_WAIT` for the first fetch of the collector's list
        (or fingerprints) when none is cached (a first start), so the first run is not one
        without it; with them cached, or once a fetch has been tried, not at all."""
        lists, config = self.testlist, self.config
        listless = config.testlist.from_collector and lists.cached is None
        bare = config.collector_fingerprints and self.fingerprints.cached is None
        if not (listless or bare) or lists.done.is_set():
            return
        if not lists.lock.locked():
            self.jobs.wake("testlist")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lists.done.wait(), FIRST_FETCH_WAIT)

    def _list_arrived(self) -> None:
        if self.listless and not self.measuring and self.testlist.cached is not None:
            self.listless = False
            self.jobs.wake("measure")

    def _record_run(self, started: int, results: int, failed: int, skipped: str) -> None:
        record_run(self.spool, self.config.schedule, started, results, failed, skipped)

    async def upload(self) -> None:
        # Over budget too: the uploader then sends heartbeat-only batches, so the collector
        # can tell an agent keeping to its budget from one silenced by a shutdown.
        try:
            result = await self.uploader.drain(self.spool, self.stop)
        finally:
            counted, self.uploader.counted = self.uploader.counted, 0
            body, self.uploader.body_bytes = self.uploader.body_bytes, 0
            await self.budget.spend(counted)
            if body:
                await asyncio.to_thread(self.spool.bump_meta, META_UPLOADED_BYTES, body)
        if result.dropped:
            await asyncio.to_thread(self.spool.bump_meta, META_REFUSED, len(result.dropped))
        failure = result.failure
        if failure is None and self.budget.spent():
            failure = PAUSED
        if failure == PAUSED:
            self.budget.log_exhausted(_PAUSED_JOBS)
        if failure is None:
            await asyncio.to_thread(self.spool.set_meta, META_LAST_UPLOAD, _now_ms())
        elif failure != PAUSED:
            log.warning("upload: %s (%d acknowledged)", failure, result.acknowledged)
        await asyncio.to_thread(self.spool.set_meta, META_UPLOAD_FAILURE, failure or "")

    async def refresh_testlist(self) -> None:
        """GET the collector's test list (conditionally) and cache it, budget allowing."""
        async with self.testlist.lock:
            try:
                await self._refresh_testlist()
            finally:
                self.testlist.done.set()
        self._list_arrived()

    async def _refresh_testlist(self) -> None:
        self.testlist.tried = True
        await asyncio.to_thread(self.spool.set_meta, META_TESTLIST_TRIED, _now_ms())
        if self.budget.spent():
            self.budget.log_exhausted("test list refresh paused")
            return
        session, spend, config = self.uploader.session, self.budget.spend, self.config
        if config.collector_fingerprints:
            await self.fingerprints.refresh(session, spend)  # it logs its own failures
        remote = config.testlist.from_collector
        failure = await self.testlist.refresh(session, spend) if remote else None
        if failure is None:
            await asyncio.to_thread(self.spool.set_meta, META_TESTLIST_FETCHED, _now_ms())
        await asyncio.to_thread(self.spool.set_meta, META_TESTLIST_FAILURE, failure or "")

    async def connectivity(self) -> None:
        # Dated by its start: an offline check lasts its timeouts, and the collector spaces
        # heartbeats by these times, so they must keep the schedule's rhythm.
        checked_ms = _now_ms()
        # A statvfs each check while the disk is full, nothing otherwise.
        if self.disk.full and await asyncio.to_thread(self.disk.recovered, self.spool):
            self.jobs.wake("measure")
        # The collector first, on its own: the resolver checks would send DNS traffic that
        # is only needed when the collector cannot be reached.
        online = self.collector_reachable = await self.control.reachable()
        if not online:
            probe = self.probe
            online = await check(
                None, probe.resolvers, probe.benign_name, 5.0, resolv_conf=probe.resolv_conf
            )
        self.is_online.remember(online)
        # After the check has decided, and only online: the sample cannot hide a shutdown.
        goodput = await self.goodput.sample(checked_ms) if online else None
        # Every check, not just changes: the collector finds outages, and an agent's silences,
        # from the whole series (a heartbeat uploaded with the next batch).
        if evicted := await self.spool.add_check_async(checked_ms, online):
            log.warning("connectivity: spool full, %d oldest checks dropped unsent", evicted)
        if goodput is not None:
            await self.spool.add_goodput_async(checked_ms, goodput)
        state = "online" if online else "offline"
        previous = await asyncio.to_thread(self.spool.get_meta, META_CONNECTIVITY)
        await asyncio.to_thread(self._record_connectivity, state)
        if previous != state:
            log.info("connectivity: %s", state)
            if online:
                self.jobs.wake("upload")  # back from a shutdown: send what piled up

    def _record_connectivity(self, state: str) -> None:
        self.spool.set_meta(META_CONNECTIVITY, state)
        self.spool.set_meta(META_CONNECTIVITY_AT, _now_ms())

    # -- lifetime --------------------------------------------------------------------------

    async def run(self) -> None:
        schedule = self.config.schedule
        now = datetime.now(UTC)
        first_measure, first_testlist = now, None
        if self.resumed:
            # Exec'd from lean mode: the measure run and the test list refresh are due when
            # the spool says, not now (lean mode hands over as soon as one is due).
            due, refresh = await asyncio.to_thread(due_from_spool, self.spool, self.config)
            if due is not None:
                first_measure = max(now, datetime.fromtimestamp(due / 1000, UTC))
            if refresh is not None:
                first_testlist = max(now, datetime.fromtimestamp(refresh / 1000, UTC))
        jobs: list[tuple[str, float, datetime | None]] = [
            ("measure", schedule.interval, first_measure),
            ("connectivity", schedule.connectivity_check, now),
            ("upload", schedule.upload, None),
        ]
        if self.config.refreshes_from_collector:
            # At once, in the background: a run never waits for it beyond _first_list.
            jobs.append(("testlist", self.config.testlist.refresh, first_testlist or now))
        if self.config.throttle.enabled:  # agent.daemon.throttle: when the spool says
            due = await asyncio.to_thread(self.throttle.due_ms)
            first_throttle = max(now, datetime.fromtimestamp(due / 1000, UTC))
            jobs.append(("throttle", self.config.throttle.interval, first_throttle))
        if self.config.trace.enabled:  # woken by each measure run's end
            jobs.append(("trace", schedule.interval, None))
        self.jobs.start(jobs, schedule.jitter)
        try:
            await self.stop.wait()
        finally:
            if pending := await self.jobs.shutdown(SHUTDOWN_GRACE):
                log.warning("shutdown: %d jobs did not stop in time", pending)


async def run_daemon(
    config: AgentConfig,
    *,
    stop: asyncio.Event,
    resolv_conf: str | None = None,
    may_idle: bool = False,
    resumed: bool = False,
) -> str | None:
    """Agent daemon: measures, spools and uploads on a schedule until ``stop`` is set.

    With ``may_idle``, it also stops by itself when nothing is due for a while and returns
    ``LEAN``: the caller then execs into lean idle mode (``agent.daemon.lean``); otherwise it
    returns None. ``resumed``: exec'd back from lean mode, so the first measure run waits
    until it is due (the spool's meta says when) instead of starting at once.

    Raises :class:`DaemonError` before starting if the agent is not enrolled or its key or
    spool cannot be used; on a full disk it waits for room (``agent.daemon.disk``). Returns
    within a few seconds of ``stop``, with the spool closed.
    ``resolv_conf`` replaces ``/etc/resolv.conf`` for the system resolver (tests point it at
    a loopback server).
    """
    state, key = read_enrolled(config)
    spool = await open_spool(config, stop)
    if spool is None:
        log.info("agent stopped")
        return None
    try:
        async with open_shared(config, state.agent_id, key, spool, resolv_conf) as shared:
            daemon = _Daemon(config, spool, shared, stop, may_idle=may_idle, resumed=resumed)
            try:
                await asyncio.to_thread(spool.set_meta, META_MODE, FULL)
            except SpoolFull as exc:
                daemon.disk.failed(exc, "the mode")
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
    if daemon.next_mode is None:
        log.info("agent stopped")
    return daemon.next_mode

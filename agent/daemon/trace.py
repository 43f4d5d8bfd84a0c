"""Agent daemon: the ``trace`` job, where along the path each newly blocked target's censor sits.

A measure run offers every result (``Measurer.on_result``); those whose verdict has a trigger
to repeat (``agent.trace.traceable``) wait here, keyed by (URL, verdict). When the run ends
the job is woken and traces at most ``trace.max_targets`` of them, one at a time, each
(URL, verdict) at most once per ``trace.interval`` (a day by default; when each was last
traced is kept in the spool's meta, so restarts keep the rhythm). A trace is spooled the
moment it exists, its traffic counted in the same transaction, and uploads as site tests
do. None starts once the day's budget has less than :data:`TRACE_BYTES` left.

Tracing needs ``CAP_NET_RAW``, scapy and libpcap (``agent.net.capture.unavailable``); without
them the job says so once, in the log, and every other test runs as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.daemon.spool import SpoolFull
from agent.trace import traceable

if TYPE_CHECKING:
    from agent.daemon.budget import DailyBudget
    from agent.daemon.config import AgentConfig
    from agent.daemon.disk import Disk
    from agent.daemon.spool import Spool
    from agent.fingerprints import FingerprintSet
    from agent.model.measurement import SiteMeasurement

__all__ = ["META_TRACED", "TRACE_BYTES", "TraceRuns"]

log = logging.getLogger("netsonde.agent")

META_TRACED = "traced"  # JSON: {"URL verdict": Unix ms of its last trace}
TRACE_BYTES = 128 * 1024  # more than the longest trace moves (32 TTLs, silences repeated)
MAX_PENDING = 256  # blocked results waiting for a trace; beyond, the newest are dropped
MAX_REMEMBERED = 4096  # (URL, verdict) pairs whose last trace is remembered


class TraceRuns:
    """Full mode's trace job: :meth:`offer` each result, :meth:`run` after a measure run."""

    def __init__(
        self,
        config: AgentConfig,
        budget: DailyBudget,
        spool: Spool,
        disk: Disk,
        fingerprints: Callable[[], FingerprintSet | None],
    ) -> None:
        self.config, self.budget, self.spool, self.disk = config, budget, spool, disk
        self.fingerprints = fingerprints
        self.pending: dict[str, SiteMeasurement] = {}
        self.unavailable: str | None = None
        self.checked = False

    def offer(self, m: SiteMeasurement) -> None:
        if not self.config.trace.enabled or traceable(m) is None:
            return
        key = f"{m.url} {m.verdict.verdict}"
        if key in self.pending or len(self.pending) < MAX_PENDING:
            self.pending[key] = m

    def _done(self) -> dict[str, int]:
        raw = self.spool.get_meta(META_TRACED)
        try:
            found = json.loads(raw) if isinstance(raw, str) else {}
        except ValueError:
            found = {}
        if not isinstance(found, dict):
            return {}
        cutoff = int(time.time() * 1000) - int(self.config.trace.interval * 1000)
        return {k: v for k, v in found.items() if isinstance(v, int) and v > cutoff}

    def _remember(self, done: dict[str, int]) -> None:
        newest = sorted(done.items(), key=lambda kv: kv[1])[-MAX_REMEMBERED:]
        self.spool.set_meta(META_TRACED, json.dumps(dict(newest), separators=(",", ":")))

    async def _check(self) -> bool:
        if not self.checked:
            from agent.net.capture import unavailable

            self.checked = True
            self.unavailable = await asyncio.to_thread(unavailable)
            if self.unavailable is not None:
                log.warning("trace: tracing is unavailable: %s; all else runs", self.unavailable)
        return self.unavailable is None

    async def run(self) -> None:
        pending, self.pending = self.pending, {}
        if not pending or not await self._check():
            return
        done = await asyncio.to_thread(self._done)
        due = [(key, m) for key, m in pending.items() if key not in done]
        traced = 0
        for key, m in due[: self.config.trace.max_targets]:
            if self.budget.spent(pending=TRACE_BYTES) or self.disk.full:
                log.info("trace: stopped, the day's budget or the disk is spent")
                break
            if not await self._trace(m):
                break
            done[key] = int(time.time() * 1000)
            await asyncio.to_thread(self._remember, done)
            traced += 1
        log.info("trace: %d of %d newly blocked targets traced", traced, len(due))

    async def _trace(self, m: SiteMeasurement) -> bool:
        """One trace, spooled; False when the spool is full."""
        from agent.trace import TraceConfig, collector_addresses, measure_trace, plan_for
        from agent.wire.record import encode_measurement

        probe, settings = self.config.probe, self.config.trace
        urls = self.config.collector.urls
        references = await asyncio.to_thread(collector_addresses, urls[0] if urls else None)
        config = TraceConfig(
            benign_name=probe.benign_sni, references=references, max_ttl=settings.max_ttl,
            window=min(2.0, probe.timeout), timeout=probe.timeout,
            fingerprints=self.fingerprints(),
        )  # fmt: skip
        planned = plan_for(m, config)
        if planned is None:
            return True
        traced = await measure_trace(*planned, config)
        usage = self.budget.add_measurement(traced)
        try:
            await self.spool.add_async(
                encode_measurement(traced), traced.id, traced.started_ms, usage=usage
            )
        except SpoolFull as exc:
            self.disk.failed(exc, "a trace")
            return False
        log.info("trace: %s: %s %s", m.url, traced.verdict.verdict, traced.verdict.evidence)
        return True

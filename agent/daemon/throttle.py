"""Agent daemon: the ``throttle`` job, the throttle test on a bounded subset of targets.

Every ``throttle.interval`` (a day by default; the last run's time is kept in the spool's
meta, so restarts and lean mode keep the rhythm), full mode runs the throttle test
(``agent.throttle``) on at most ``throttle.max_targets`` targets, one at a time:

- the local test lists' rows in ``throttle.categories`` (Citizen Lab codes: social networking
  ``GRP``, messaging ``COMT``, circumvention ``ANON`` by default);
- with ``throttle.from_collector``, the URLs the collector's far-end ticket flags (its
  operator's, and its own list's rows in those categories: ``collector.farend.service``).

When there are more, each run takes the next ones in turn. Each test can move about 4 MB
(BENCHMARKS.md), so none starts once the day's budget has less than :data:`TEST_BYTES` left;
each is spooled the moment it exists, its traffic counted in the same transaction, and it
uploads as site tests do. The collector names the far end, so the agent connects to it only
where ``agent.model.addresses.may_reach`` allows (and ``testlist.allow_networks``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.daemon.spool import SpoolFull
from agent.model.addresses import is_address, may_reach
from agent.model.measurement import Target, TargetError

if TYPE_CHECKING:
    from agent.api.control import HTTPControl
    from agent.api.farend import Tickets
    from agent.daemon.budget import DailyBudget
    from agent.daemon.config import AgentConfig
    from agent.daemon.disk import Disk
    from agent.daemon.spool import Spool
    from agent.model.farend import FarendTicket

__all__ = ["META_THROTTLE_AT", "TEST_BYTES", "ThrottleRuns", "throttle_due_ms", "throttle_targets"]

log = logging.getLogger("netsonde.agent")

META_THROTTLE_AT = "throttle_run_ms"
TEST_BYTES = 4_000_000
BUSY_WAIT = 1800.0  # seconds a run waits for a measure run to end, then goes ahead


def throttle_due_ms(spool: Spool, config: AgentConfig) -> int:
    """When the next run is due (Unix ms); 0 if there never was one."""
    last = spool.get_meta(META_THROTTLE_AT)
    return last + int(config.throttle.interval * 1000) if isinstance(last, int) else 0


def _local(paths: tuple[Path, ...], categories: tuple[str, ...]) -> list[Target]:
    from agent.wire.testlist import in_categories

    found: list[Target] = []
    for path in paths:
        try:
            found += in_categories(path.read_text(encoding="utf-8-sig"), categories)
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("throttle: cannot read %s: %s", path, exc)
    return found


def throttle_targets(config: AgentConfig, ticket: FarendTicket | str) -> list[Target]:
    """Every candidate, each URL once, the local lists' first; reads files (a thread's job)."""
    from agent.model.farend import FarendTicket

    settings = config.throttle
    found = _local(config.testlist.files, settings.categories)
    if settings.from_collector and isinstance(ticket, FarendTicket):
        for text in ticket.targets:
            try:
                target = Target.parse(text)
            except TargetError:
                continue
            if is_address(target.host) and not may_reach(
                target.host, config.testlist.allow_networks
            ):
                continue  # the collector's say-so does not send the agent into its own LAN
            found.append(target)
    return list({target.url: target for target in found}.values())


class ThrottleRuns:
    """Full mode's throttle job: :meth:`run` is the job, :meth:`due_ms` when it is next due."""

    def __init__(
        self,
        config: AgentConfig,
        control: HTTPControl,
        budget: DailyBudget,
        spool: Spool,
        disk: Disk,
        resolv_conf: str = "/etc/resolv.conf",
        busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self.config, self.control, self.budget = config, control, budget
        self.spool, self.disk, self.resolv_conf = spool, disk, resolv_conf
        self.busy = busy  # a measure run is on: it and the tests would slow each other
        self.offset = 0  # where the next run starts in the candidates, when there are more

    def due_ms(self) -> int:
        return throttle_due_ms(self.spool, self.config)

    async def run(self) -> None:
        from agent.api.farend import FarendClient, Tickets

        waited = 0.0
        while self.busy() and waited < BUSY_WAIT:
            await asyncio.sleep(1.0)
            waited += 1.0
        await asyncio.to_thread(self.spool.set_meta, META_THROTTLE_AT, int(time.time() * 1000))
        if self.budget.spent(pending=TEST_BYTES):
            log.info("throttle: not run, less than %d bytes of today's budget left", TEST_BYTES)
            return
        config = self.config
        ca_file = None if config.ca_file is None else str(config.ca_file)
        client = FarendClient(
            self.control.collector_url, timeout=max(10.0, 2 * config.probe.timeout),
            ca_file=ca_file, credential=self.control.credential,
        )  # fmt: skip
        async with client:
            tickets = Tickets(client)
            ticket = await tickets.get()
            targets = await asyncio.to_thread(throttle_targets, config, ticket)
            chosen = self._next(targets)
            spooled = await self._measure(chosen, tickets)
        log.info("throttle: %d of %d targets tested", spooled, len(targets))

    def _next(self, targets: list[Target]) -> list[Target]:
        if not targets:
            return []
        count = min(self.config.throttle.max_targets, len(targets))
        start = self.offset % len(targets)
        self.offset = start + count
        return [targets[(start + i) % len(targets)] for i in range(count)]

    async def _measure(self, targets: list[Target], tickets: Tickets) -> int:
        from agent.probes.throttle import ThrottlePlan
        from agent.throttle import ThrottleConfig, measure_throttle
        from agent.wire.record import encode_measurement

        probe = self.config.probe
        settings = ThrottleConfig(
            benign_name=probe.benign_sni,
            plan=ThrottlePlan(timeout=probe.timeout),
            dns_timeout=probe.dns_timeout,
            resolv_conf=self.resolv_conf,
            may_reach=functools.partial(may_reach, allowed=self.config.testlist.allow_networks),
        )
        spooled = 0
        for target in targets:
            if self.budget.spent(pending=TEST_BYTES) or self.disk.full:
                break
            m = await measure_throttle(target, await tickets.get(), settings)
            usage = self.budget.add_measurement(m)
            try:
                await self.spool.add_async(encode_measurement(m), m.id, m.started_ms, usage=usage)
            except SpoolFull as exc:
                self.disk.failed(exc, "a throttle test")
                break
            spooled += 1
            log.info("throttle: %s: %s %s", target.url, m.verdict.verdict, m.verdict.evidence)
        return spooled

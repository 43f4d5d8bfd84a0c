"""Agent daemon: one measure run of full mode (``agent.daemon.full``): which targets, with
which probe settings, and every result into the spool as it comes.

The targets are the local test list files, re-read each run so an edited list applies without
a restart, then the collector's cached list (``agent.daemon.testlist``), each URL once, the
local copy first. Local files are the operator's own choice and are measured as they are. The
collector's list is someone else's say-so: its non-public IP literals are dropped before the
run, and its names are measured with ``ProbeConfig.may_reach`` set, so the site test opens no
connection to an address of theirs that ``agent.model.addresses.may_reach`` refuses (the LAN,
loopback, a cloud metadata service), unless it is inside ``testlist.allow_networks``.

A result is spooled the moment it exists. A run stops short, the rest of its targets left
out, once the day's bandwidth budget is spent or the spool's disk is full
(``agent.daemon.disk``, which counts the lost writes and logs once).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from agent.daemon.budget import DailyBudget
from agent.daemon.config import AgentConfig
from agent.daemon.disk import Disk
from agent.daemon.spool import Spool, SpoolFull
from agent.daemon.testlist import CollectorTestList
from agent.fingerprints import FingerprintSet
from agent.model.addresses import IPNetwork, may_reach
from agent.model.measurement import SiteMeasurement, Target
from agent.site import ControlSource, ProbeConfig, measure_site
from agent.wire.record import encode_measurement
from agent.wire.testlist import read_test_list

__all__ = ["Measurer", "RunTotals", "remote_probe", "run_targets"]

log = logging.getLogger("netsonde.agent")


@dataclass
class RunTotals:
    spooled: int = 0
    failed: int = 0  # not measured: a bug, logged with its traceback
    skipped: int = 0  # left out: the day's budget spent
    full: int = 0  # left out, or measured and lost: the disk full


def run_targets(config: AgentConfig, testlist: CollectorTestList) -> list[tuple[Target, bool]]:
    """This run's targets, each with whether it came from the collector's list. Reads the
    files and parses the list: call in a thread."""
    targets: list[tuple[Target, bool]] = []
    seen: set[str] = set()

    def add(found: list[Target], remote: bool) -> None:
        for target in found:
            if target.url not in seen:
                seen.add(target.url)
                targets.append((target, remote))

    for path in config.testlist.files:
        found, problems = read_test_list(path)
        for problem in problems:
            log.warning("test list: skipped %s", problem)
        add(found, False)
    if config.testlist.from_collector:
        add(testlist.targets(config.testlist.allow_networks), True)
    return targets


def remote_probe(probe: ProbeConfig, allowed: Sequence[IPNetwork]) -> ProbeConfig:
    """``probe`` for the collector's targets: no connection to a non-public address."""
    return dataclasses.replace(probe, may_reach=functools.partial(may_reach, allowed=allowed))


@dataclass(frozen=True)
class Measurer:
    """What a run measures with: ``probe`` for local targets, ``remote`` for the collector's."""

    probe: ProbeConfig
    remote: ProbeConfig
    control: ControlSource
    is_online: Callable[[], Awaitable[bool]]
    spool: Spool
    budget: DailyBudget
    disk: Disk
    concurrency: int
    # Told of every spooled result (agent.daemon.trace offers the blocked ones a trace).
    on_result: Callable[[SiteMeasurement], None] | None = None

    def with_fingerprints(self, fingerprints: FingerprintSet | None) -> Measurer:
        """This measurer with the collector's ``fingerprints``; itself when there are none."""
        if fingerprints is None:
            return self
        probe = dataclasses.replace(self.probe, fingerprints=fingerprints)
        remote = dataclasses.replace(self.remote, fingerprints=fingerprints)
        return dataclasses.replace(self, probe=probe, remote=remote)

    async def run(self, targets: list[tuple[Target, bool]]) -> RunTotals:
        totals = RunTotals()
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(target: Target, remote: bool) -> None:
            async with semaphore:
                # Checked per target: a run that spends the budget or fills the disk stops there.
                if self.budget.spent():
                    totals.skipped += 1
                    return
                if self.disk.full:
                    totals.full += 1
                    return
                probe = self.remote if remote else self.probe
                m = await measure_site(target, probe, self.control, is_online=self.is_online)
            # Spooled the moment it exists: a crash or shutdown later loses nothing measured.
            # Its traffic is counted in the same transaction, so a restart cannot forget it.
            usage = self.budget.add_measurement(m)
            try:
                await self.spool.add_async(encode_measurement(m), m.id, m.started_ms, usage=usage)
            except SpoolFull as exc:
                self.disk.failed(exc, "a result")
                totals.full += 1
                return
            totals.spooled += 1
            if self.on_result is not None:
                self.on_result(m)

        # return_exceptions: one target's bug must not throw away the others' results.
        outcomes = await asyncio.gather(*(one(t, r) for t, r in targets), return_exceptions=True)
        for (target, _), outcome in zip(targets, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                totals.failed += 1
                log.error("measure: %s: not measured: %r", target.url, outcome, exc_info=outcome)
        return totals

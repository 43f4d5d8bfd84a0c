"""Agent daemon: full mode's start: what its jobs share, opened together and closed together.

The probe settings with their blockpage fingerprints, the collector's control client (its
requests signed with the agent's key), the daily bandwidth budget, the uploader that keeps to
it, and the collector's test list and fingerprints with their caches read from the state
directory; for :func:`agent.daemon.full.run_daemon`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.api.auth import Credential
from agent.api.control import HTTPControl
from agent.daemon.budget import DailyBudget
from agent.daemon.config import AgentConfig
from agent.daemon.fingerprints import CollectorFingerprints, read_fingerprints_cache
from agent.daemon.spool import Spool
from agent.daemon.state import next_batch_seq
from agent.daemon.testlist import CollectorTestList, read_testlist_cache
from agent.daemon.upload_budgeted import BudgetedUploader
from agent.fingerprints import FingerprintFileError, FingerprintSet, load
from agent.site import ProbeConfig

__all__ = ["Shared", "open_shared"]

log = logging.getLogger("netsonde.agent")


@dataclass(frozen=True)
class Shared:
    """What full mode's jobs share besides the configuration and the spool."""

    probe: ProbeConfig
    control: HTTPControl
    uploader: BudgetedUploader
    budget: DailyBudget
    testlist: CollectorTestList
    fingerprints: CollectorFingerprints  # used only with config.collector_fingerprints


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


async def _fingerprints(config: AgentConfig) -> CollectorFingerprints:
    cached = None
    if config.collector_fingerprints:
        cached = await asyncio.to_thread(read_fingerprints_cache, config.state_dir)
    return CollectorFingerprints(
        cached,
        collector_urls=config.collector.urls,
        proxy=config.collector.proxy,
        state_dir=config.state_dir,
    )


@asynccontextmanager
async def open_shared(
    config: AgentConfig,
    agent_id: str,
    key: Ed25519PrivateKey,
    spool: Spool,
    resolv_conf: str | None,
) -> AsyncIterator[Shared]:
    """Opens what the jobs share for an enrolled agent; its HTTP sessions close on exit.
    ``resolv_conf`` replaces ``/etc/resolv.conf`` for the system resolver."""
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
                credential=Credential(agent_id, key),
            )
        )
        budget = await asyncio.to_thread(DailyBudget, config.limits.daily_bandwidth, spool)
        uploader = await stack.enter_async_context(
            BudgetedUploader(
                config.collector.urls,
                agent_id,
                key,
                budget=budget,
                next_seq=lambda: next_batch_seq(spool),
                proxy=config.collector.proxy,
                ca_file=ca_file,
            )
        )
        cached = None
        if config.testlist.from_collector:
            cached = await asyncio.to_thread(read_testlist_cache, config.state_dir)
        testlist = CollectorTestList(
            cached,
            collector_urls=config.collector.urls,
            proxy=config.collector.proxy,
            state_dir=config.state_dir,
        )
        yield Shared(probe, control, uploader, budget, testlist, await _fingerprints(config))

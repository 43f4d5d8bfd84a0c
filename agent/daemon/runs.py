"""Agent daemon: full mode's run bookkeeping in the spool's meta table, and when it may idle.

What ``netsonde-agent status`` and lean mode read about the measure runs is written here, as
each run ends; what is due, once the daemon was exec'd back from lean mode, is read back from
the same keys (``agent.daemon.state``). :func:`idle_for` is the part of full mode's switch
into lean idle mode (docs/design/005-lean-idle.md) that looks at the schedule and the spool.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from agent.daemon.budget import BUDGET_SPENT
from agent.daemon.state import (
    META_LAST_RUN,
    META_LAST_RUN_FAILED,
    META_LAST_RUN_RESULTS,
    META_LAST_RUN_SKIPPED,
    META_NEXT_RUN,
    META_RUNS,
    draw_next_run,
    lean_threshold,
    next_run_ms,
    testlist_due_ms,
)

if TYPE_CHECKING:
    from agent.daemon.budget import DailyBudget
    from agent.daemon.config import AgentConfig, ScheduleConfig
    from agent.daemon.jobs import JobRunner
    from agent.daemon.measure import RunTotals
    from agent.daemon.spool import Spool

__all__ = ["IDLE_JOBS", "due_from_spool", "idle_for", "record_run", "why"]

# The scheduled jobs whose next run keeps the daemon in full mode; the others either run in
# lean mode too (connectivity) or are only woken by these (upload). The trace job is too, but
# what it will trace lives in memory: once woken (due now) it must run before lean mode.
IDLE_JOBS = ("measure", "testlist", "throttle", "trace")


def why(totals: RunTotals) -> str:
    """Why a run left targets out, for the status; "" if it did not."""
    parts = [f"{totals.skipped} targets: {BUDGET_SPENT}"] if totals.skipped else []
    parts += [f"{totals.full} targets: disk full"] if totals.full else []
    return "; ".join(parts)


def record_run(
    spool: Spool, schedule: ScheduleConfig, started: int, results: int, failed: int, skipped: str
) -> None:
    """A run's end, and when the next is due, its jitter drawn now so lean mode keeps it."""
    spool.set_meta(META_LAST_RUN, started)
    spool.set_meta(META_NEXT_RUN, draw_next_run(started, schedule))
    spool.set_meta(META_LAST_RUN_RESULTS, results)
    spool.set_meta(META_LAST_RUN_FAILED, failed)
    spool.set_meta(META_LAST_RUN_SKIPPED, skipped)
    spool.bump_meta(META_RUNS, 1)


def due_from_spool(spool: Spool, config: AgentConfig) -> tuple[int | None, int | None]:
    """When the next measure run and test list refresh are due (Unix ms), as the spool says."""
    return next_run_ms(spool, config.schedule), testlist_due_ms(spool, config)


async def idle_for(
    config: AgentConfig, jobs: JobRunner, spool: Spool, budget: DailyBudget
) -> float | None:
    """``agent.daemon.state.lean_threshold`` in seconds if nothing is due within it: no
    measure run, test list refresh or throttle test, no record waiting that may be uploaded;
    None if something is. The caller checks again that no job started meanwhile."""
    assert jobs.scheduler is not None
    idle = lean_threshold(config.schedule)
    horizon = datetime.now(UTC) + timedelta(seconds=idle)
    for name in IDLE_JOBS:
        job = jobs.scheduler.get_job(name)
        if job is not None and job.next_run_time is not None and job.next_run_time < horizon:
            return None
    records, _ = await spool.depth_async()
    if records and not budget.spent():
        return None
    return idle

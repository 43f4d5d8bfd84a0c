"""Agent daemon: the apscheduler wiring both daemon modes share (``agent.daemon``,
``agent.lean``): how a job is scheduled, and how running jobs are stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]


def add_interval_job(
    scheduler: AsyncIOScheduler,
    run: Callable[[str], Any],
    name: str,
    every: float,
    jitter: float,
    first: datetime | None,
) -> None:
    """``run(name)`` every ``every`` seconds, give or take ``jitter`` of it; first at
    ``first``, or one interval from now when None (apscheduler would pause a job given
    ``next_run_time=None``)."""
    scheduler.add_job(
        run,
        IntervalTrigger(seconds=every, jitter=every * jitter, timezone=UTC),
        args=(name,),
        id=name,
        name=name,
        # One run at a time; runs missed while busy or asleep collapse into one, and a run
        # late by up to half an interval is still worth doing.
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(every / 2)),
        **({"next_run_time": first} if first is not None else {}),
    )


async def stop_jobs(
    scheduler: AsyncIOScheduler, running: set[asyncio.Task[Any]], grace: float
) -> int:
    """Shuts the scheduler down and cancels the jobs still running; how many did not stop
    within ``grace`` seconds. Not waiting for them first: a test list run can take many
    minutes, and its results so far are already spooled, so cancelling it loses nothing."""
    scheduler.shutdown(wait=False)
    tasks = list(running)
    for task in tasks:
        task.cancel()
    if not tasks:
        return 0
    _, pending = await asyncio.wait(tasks, timeout=grace)
    return len(pending)

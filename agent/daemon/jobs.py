"""Agent daemon: the jobs of a daemon mode (``agent.daemon.full``, ``agent.daemon.lean``), run
by name on apscheduler: how they are scheduled, woken, tracked while they run, and stopped.

A job is a method of its mode's daemon, registered by name in that daemon's
:class:`JobRunner`. Light, like everything lean mode imports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from agent.daemon.spool import SpoolError, SpoolFull

__all__ = ["Job", "JobRunner", "add_interval_job"]

log = logging.getLogger("netsonde.agent")

Job = Callable[[], Awaitable[None]]


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


class JobRunner:
    """One daemon mode's jobs by name. Every job runs through :meth:`run`, so shutdown knows
    which tasks to cancel and wait for.

    ``error_format`` logs a :class:`SpoolError` with the job's name and the error; a
    :class:`SpoolFull` goes to ``on_full`` with the job's name instead, when given (a full
    disk would otherwise log at every check and upload); ``after`` runs once a job has
    finished without one, given that job's task.
    """

    def __init__(
        self,
        jobs: Mapping[str, Job],
        stop: asyncio.Event,
        *,
        error_format: str = "%s: %s",
        after: Callable[[asyncio.Task[Any] | None], Awaitable[None]] | None = None,
        on_full: Callable[[SpoolFull, str], None] | None = None,
    ) -> None:
        self.jobs, self.stop = dict(jobs), stop
        self.error_format, self.after, self.on_full = error_format, after, on_full
        self.scheduler: AsyncIOScheduler | None = None
        self.running: set[asyncio.Task[Any]] = set()

    async def run(self, name: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.running.add(task)
        try:
            await self.jobs[name]()
            if self.after is not None:
                await self.after(task)
        except SpoolFull as exc:
            if self.on_full is None:
                log.error(self.error_format, name, exc)
            else:
                self.on_full(exc, name)
        except SpoolError as exc:
            # A broken spool: log it and let the next run try again.
            log.error(self.error_format, name, exc)
        finally:
            if task is not None:
                self.running.discard(task)

    def others_running(self, current: asyncio.Task[Any] | None) -> bool:
        """Whether a job other than ``current`` is running."""
        return bool(self.running - {current})

    def start(self, intervals: Iterable[tuple[str, float, datetime | None]], jitter: float) -> None:
        """Schedules each (name, every, first) job as :func:`add_interval_job` does, on the
        running event loop, and starts the scheduler."""
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        for name, every, first in intervals:
            add_interval_job(scheduler, self.run, name, every, jitter, first)
        self.scheduler = scheduler
        scheduler.start()

    def wake(self, job_id: str) -> None:
        """Runs a job now instead of at its next interval (skipped if it is running)."""
        if self.scheduler is not None and self.scheduler.running and not self.stop.is_set():
            self.scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))

    async def shutdown(self, grace: float) -> int:
        """Shuts the scheduler down and cancels the jobs still running; how many did not stop
        within ``grace`` seconds. Not waiting for them first: a test list run can take many
        minutes, and its results so far are already spooled, so cancelling it loses nothing."""
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        tasks = list(self.running)
        for task in tasks:
            task.cancel()
        if not tasks:
            return 0
        _, pending = await asyncio.wait(tasks, timeout=grace)
        return len(pending)

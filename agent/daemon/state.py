"""Agent daemon: the state its two modes share through the spool's meta table, and when the
daemon may drop into lean idle mode.

The daemon runs either in full mode (``agent.daemon.full``: measuring, uploading,
connectivity, test list) or in lean idle mode (``agent.daemon.lean``: connectivity checks and
heartbeats only), one after the other in the same process, switching by exec
(docs/design/005-lean-idle.md).
Nothing survives an exec but the spool, so every schedule either mode needs is derived here
from the meta keys both write. Standard library only, like everything lean mode imports.
"""

from __future__ import annotations

import contextlib
import random
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.daemon.config import AgentConfig, ScheduleConfig
    from agent.daemon.spool import Spool

SPOOL_FILE = "spool.db"

# Spool meta keys, shared with ``netsonde-agent status``.
META_LAST_RUN = "last_run_ms"
META_NEXT_RUN = "next_run_ms"  # when the next measure run is due, its jitter drawn
META_LAST_RUN_RESULTS = "last_run_results"
META_LAST_RUN_FAILED = "last_run_failed"
META_LAST_UPLOAD = "last_upload_ms"
META_UPLOAD_FAILURE = "last_upload_failure"
META_CONNECTIVITY = "connectivity"
META_CONNECTIVITY_AT = "connectivity_checked_ms"
META_BATCH_SEQ = "batch_seq"
META_RUNS = "runs_total"  # measure runs started (skipped ones included)
META_LAST_RUN_SKIPPED = "last_run_skipped"  # why the last run left targets out; "" if none
META_REFUSED = "refused_total"  # records the collector refused for good (part of acked)
META_UPLOADED_BYTES = "uploaded_body_bytes"  # signed batch bodies POSTed, since the spool began
META_TESTLIST_FETCHED = "testlist_fetched_ms"  # last answer from the collector, 200 or 304
META_TESTLIST_TRIED = "testlist_tried_ms"  # last fetch attempted, whatever came of it
META_TESTLIST_FAILURE = "testlist_failure"  # why the last fetch failed; "" if it did not
META_MODE = "mode"  # FULL or LEAN: what the daemon runs now
META_WRITE_FAILURES = "write_failures_total"  # spool writes lost to a full disk (agent.daemon.disk)

FULL = "full"
LEAN = "lean"

# Full mode execs into lean mode only when no measure run or test list refresh is due within
# max(LEAN_IDLE_CHECKS x schedule.connectivity_check, LEAN_MIN_IDLE) seconds. Each switch
# costs a re-import (about a second of CPU on a Raspberry Pi, mostly aiohttp and dnspython),
# so it only pays off for idle stretches far longer than that; and relative to the check
# interval so that a daemon checking every few seconds does not switch back and forth.
LEAN_MIN_IDLE = 60.0
LEAN_IDLE_CHECKS = 2


def lean_threshold(schedule: ScheduleConfig) -> float:
    """Seconds that must pass before anything is due for full mode to go lean."""
    return max(LEAN_IDLE_CHECKS * schedule.connectivity_check, LEAN_MIN_IDLE)


def draw_next_run(started_ms: int, schedule: ScheduleConfig) -> int:
    """The next run's due time after a run started at ``started_ms``: one interval later,
    give or take ``schedule.jitter`` of it, drawn once and kept in the spool so that an exec
    between modes neither re-draws nor drops it."""
    spread = schedule.interval * schedule.jitter
    return started_ms + int((schedule.interval + random.uniform(-spread, spread)) * 1000)


def next_run_ms(spool: Spool, schedule: ScheduleConfig) -> int | None:
    """When the next measure run is due (Unix ms); None if no run ever happened."""
    due = spool.get_meta(META_NEXT_RUN)
    if isinstance(due, int):
        return due
    last = spool.get_meta(META_LAST_RUN)  # a spool from before META_NEXT_RUN existed
    return last + int(schedule.interval * 1000) if isinstance(last, int) else None


def next_batch_seq(spool: Spool) -> int:
    """The next batch's sequence number: one above the last, and at least the time in Unix
    ms. The collector refuses a batch not numbered above the last it accepted (a replay), so
    the numbers must keep growing across restarts and both modes; the time keeps them growing
    where the last cannot be stored, on a full disk, since uploads must not need a write to go
    out (they are what empties the spool there). Stored otherwise: a tiny write per batch."""
    from agent.daemon.spool import SpoolFull

    last = spool.get_meta(META_BATCH_SEQ)
    seq = max((last if isinstance(last, int) else 0) + 1, int(time.time() * 1000))
    with contextlib.suppress(SpoolFull):  # the clock stands in until writes work again
        spool.set_meta(META_BATCH_SEQ, seq)
    return seq


def testlist_due_ms(spool: Spool, config: AgentConfig) -> int | None:
    """When the collector's test list (and fingerprints) are due for a refresh (Unix ms);
    None if neither is fetched at all, or never was (the first measure run fetches them)."""
    if not config.refreshes_from_collector:
        return None
    times = [spool.get_meta(key) for key in (META_TESTLIST_TRIED, META_TESTLIST_FETCHED)]
    tried = [t for t in times if isinstance(t, int)]
    return max(tried) + int(config.testlist.refresh * 1000) if tried else None

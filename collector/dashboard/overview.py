"""Collector dashboard: the overview's figures, read at once.

The overview needs the matrix's sums, the timeline, the agents' newest checks, the outage
events and the incidents. Each is a read of its own, so they run on worker threads side by
side (SQLite and PostgreSQL answer them in parallel, and the GIL is released while they
do): the page costs about its slowest read, not their sum. The outage events are read once,
for the chart and for the outage incidents both. Incidents and outages are those of the
last week at most, whatever the period of the charts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from collector.dashboard.views import Totals, Window, totals
from collector.incidents import BLOCKING, OUTAGE, Incident, detect
from collector.outages import SILENT_TAIL_MS, Outage
from collector.storage import Storage
from collector.storage.dashboard import latest_checks
from collector.storage.schema import DAY_MS
from collector.thresholds import Thresholds

__all__ = ["INCIDENT_DAYS", "Overview", "read_overview"]

INCIDENT_DAYS = 7


@dataclass(frozen=True)
class Overview:
    totals: Totals
    series: list[tuple[int, dict[str, int]]]
    online: int  # agents whose newest check is online and recent
    enrolled: int
    outages: list[Outage]  # of the last INCIDENT_DAYS days at most, as the incidents
    incidents: list[Incident]
    recent_days: int  # that period
    recent_since_ms: int


async def read_overview(
    storage: Storage, w: Window, now_ms: int, thresholds: Thresholds
) -> Overview:
    def summed() -> Totals:
        return totals(storage.blocking(since_ms=w.since_ms, until_ms=w.until_ms))

    def agents() -> tuple[int, int]:
        checks = latest_checks(storage)
        online = sum(1 for c in checks if c.online and now_ms - c.ms <= SILENT_TAIL_MS)
        return online, len(storage.agent_summaries())

    # Incidents and outages are what is going on now: at most the last week's, whatever the
    # charts span. Both read every window or check of their period: 90 days took seconds
    # on 1M measurements (BENCHMARKS.md, "Dashboard"); the outages page has any period.
    since = max(w.since_ms, w.until_ms - INCIDENT_DAYS * DAY_MS)

    def blocking() -> list[Incident]:
        return detect(storage, since, w.until_ms, thresholds, kinds=(BLOCKING,))

    found, series, (online, enrolled), blocked, outages = await asyncio.gather(
        asyncio.to_thread(summed),
        asyncio.to_thread(
            storage.timeline, bucket_ms=w.bucket_ms, since_ms=w.since_ms, until_ms=w.until_ms
        ),
        asyncio.to_thread(agents),
        asyncio.to_thread(blocking),
        storage.outages_async(now_ms=now_ms, since_ms=since, until_ms=w.until_ms),
    )
    down = detect(storage, since, w.until_ms, thresholds, kinds=(OUTAGE,), outages=outages)
    days = min(w.days, INCIDENT_DAYS)
    return Overview(found, series, online, enrolled, outages, blocked + down, days, since)

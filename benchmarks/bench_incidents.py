"""Benchmark: incident detection and a report on a store of many measurements.

    .venv/bin/python benchmarks/bench_incidents.py sqlite:////path/to/fill.db [--runs 5]
    .venv/bin/python benchmarks/bench_incidents.py --fill 1000000 --cache-dir /tmp/inc-bench

A store filled by benchmarks/fill_store.py (its default shape: 200 domains on 6 networks,
2 agents each, a quarter of the pairs blocked, over 8 weeks before its newest hour), or one
given. Times, at the storage level (no HTTP), the median of ``--runs``:

- ``detect`` of the last 7 days, 30 days and all time (what GET /api/v1/incidents runs);
- the report of the most blocked domain over the last 7 days (what GET /report and
  ``netsonde-collector report`` run), the evidence bundle's id included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from collector.evidence.query import EvidenceQuery
from collector.incidents import BLOCKING, detect
from collector.reports import report_html
from collector.storage import Storage, open_storage
from collector.storage.schema import DAY_MS, HOUR_MS, rollups
from collector.thresholds import Thresholds


def timed(runs: int, work: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def newest_hour(storage: Storage) -> int:
    with storage.engine.connect() as conn:
        return int(conn.execute(select(func.max(rollups.c.hour_ms))).scalar_one()) + HOUR_MS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="a filled store (default: --fill one)")
    parser.add_argument("--fill", type=int, default=1_000_000, metavar="N")
    parser.add_argument("--cache-dir", default="/tmp/inc-bench", metavar="DIR")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    url = args.url
    if url is None:
        from benchmarks.fill_store import fill

        path = Path(args.cache_dir) / f"fill-{args.fill}.db"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fill(f"sqlite:///{path}", args.fill)
        url = f"sqlite:///{path}"
    storage = open_storage(url)
    try:
        end = newest_hour(storage)
        t = Thresholds()
        print(f"{storage.count_measurements():,} measurements; thresholds {t}")
        for days in (7, 30, None):
            since = 0 if days is None else end - days * DAY_MS
            ms, found = timed(args.runs, lambda s=since: detect(storage, s, end, t))  # type: ignore[misc]
            incidents = found if isinstance(found, list) else []
            blocking = [i for i in incidents if i.kind == BLOCKING]
            label = "all time" if days is None else f"last {days} days"
            outages = len(incidents) - len(blocking)
            print(f"detect, {label}: {ms:.0f} ms median of {args.runs}; "
                  f"{len(blocking)} blocking incidents, {outages} outages")  # fmt: skip
        recent = detect(storage, end - 7 * DAY_MS, end, t, kinds=(BLOCKING,))
        top = max(recent, key=lambda i: i.blocking)
        query = EvidenceQuery(top.domain, (), end - 7 * DAY_MS, end)
        ms, body = timed(args.runs, lambda: report_html(storage, query, t))
        size = len(body) if isinstance(body, bytes) else 0
        print(f"report, {top.domain} on every network, last 7 days: {ms:.0f} ms median of "
              f"{args.runs}; {size / 1024:.1f} KiB")  # fmt: skip
    finally:
        storage.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

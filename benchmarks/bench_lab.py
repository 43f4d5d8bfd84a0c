"""Benchmark: how long the censor lab takes to come up and to go down.

    sudo .venv/bin/python benchmarks/bench_lab.py [--runs N] [--scenarios PATH]

Brings the full lab up and down N times and prints each phase's median and
worst time. The target is bring-up under 10 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.lab.lab import Lab
from tests.lab.scenarios import DEFAULT_TABLE, load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenarios", type=Path, default=DEFAULT_TABLE)
    args = parser.parse_args()
    table = load(args.scenarios)
    ups, downs = [], []
    for run in range(1, args.runs + 1):
        lab = Lab(table)
        started = time.perf_counter()
        lab.up()
        up = time.perf_counter() - started
        started = time.perf_counter()
        lab.down()
        down = time.perf_counter() - started
        ups.append(up)
        downs.append(down)
        print(f"run {run}/{args.runs}: up {up:.2f}s, down {down:.2f}s", flush=True)
    services = len(Lab(table).table.rows)
    print(f"\nlab with {services} scenarios, {args.runs} runs")
    print(f"bring-up: median {statistics.median(ups):.2f}s, max {max(ups):.2f}s (target < 10s)")
    print(f"teardown: median {statistics.median(downs):.2f}s, max {max(downs):.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the throttle test in the lab, its verdicts over many runs and what one test costs.

    sudo .venv/bin/python benchmarks/bench_throttle.py [--runs 20] [--decoy-runs 20]

Brings the lab up with the real collector (and its far end) in the net namespace, then runs
the real ``netsonde-agent probe --throttle`` in the agent namespace:

- every throttle row ``--runs`` times: how often it is ``throttled``, with the right trigger
  and direction, and the estimated limit against the lab's rate (the issue's bar: every
  run, within 25%);
- each decoy (the whole link slow; lossy and jittery) ``--decoy-runs`` times with its
  condition on, on the decoy's own name: never ``throttled``;
- a clean name ``--runs`` times: what one test costs when nothing holds it back (its most
  bytes), next to the throttled rows (their most seconds). Bytes are the agent's own count
  of each test (``agent.daemon.budget.throttle_bytes``: payload, connections, handshakes,
  requests), read back from the wire records; seconds are each test's wall time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.daemon.budget import throttle_bytes
from tests.lab import engine
from tests.lab.checks import rate_kbps
from tests.lab.collector import LabCollector
from tests.lab.lab import Lab
from tests.lab.scenarios import Scenario
from tests.lab.throttling import DEFAULT_THROTTLE_RATE, LINK_TECHNIQUES, set_link_condition

TOLERANCE = 0.25


def costs(records: Path) -> dict[str, int]:
    """Each throttle record's estimated bytes, by URL."""
    spent = engine.record_costs
    return spent(records, lambda m: None if m.throttle is None else throttle_bytes(m.throttle))


def run(lab: Lab, url: str, runs: int, collector: LabCollector, out: Path) -> list[dict[str, Any]]:
    urls = [f"{url}?run={n}" for n in range(runs)]
    results = engine.throttle(
        lab, urls, collector_url=collector.url, options=["--msgpack-out", str(out)]
    )
    spent = costs(out)
    for result in results:
        result["bytes"] = spent[result["target"]]
    return results


def summary(name: str, results: list[dict[str, Any]], expected: str) -> str:
    verdicts = Counter(r["verdict"] for r in results)
    seconds = [r["ms"] / 1000 for r in results]
    megabytes = [r["bytes"] / 1e6 for r in results]
    return (
        f"| {name} | {verdicts.get(expected, 0)}/{len(results)} {expected} "
        f"({', '.join(f'{n} {v}' for v, n in sorted(verdicts.items()))}) | "
        f"{statistics.median(seconds):.1f} s (max {max(seconds):.1f}) | "
        f"{statistics.median(megabytes):.2f} MB (max {max(megabytes):.2f}) |"
    )


def limits(row: Scenario, results: list[dict[str, Any]]) -> str:
    rate = rate_kbps(row.params.get("rate", DEFAULT_THROTTLE_RATE))
    keys = ["limit_kbps"] + (["up_limit_kbps"] if row.params.get("direction") == "both" else [])
    seen = [r["evidence"][k] for r in results for k in keys if k in r["evidence"]]
    within = sum(abs(k - rate) <= TOLERANCE * rate for k in seen)
    right = sum(
        r["evidence"].get("trigger") == row.trigger
        and r["evidence"].get("direction") == row.params.get("direction", "down")
        for r in results
    )
    return (
        f"{row.domain}: lab rate {rate:.0f} kbit/s; estimated {min(seen)}-{max(seen)}, median "
        f"{statistics.median(seen):.0f}; {within}/{len(seen)} within 25%; trigger and "
        f"direction right in {right}/{len(results)}"
    )


def measure(lab: Lab, tmp: Path, runs: int, decoy_runs: int) -> tuple[list[str], list[str]]:
    lines, notes = [], []
    # 100 tests move some 300 MB: past the far end's daily cap for one agent (a refusal).
    with LabCollector(lab, tmp / "collector", ["--farend-daily-bytes", str(10**10)]) as collector:
        out = tmp / "records.msgpack"
        clean = lab.table.benign
        results = run(lab, clean.url, runs, collector, out)
        lines.append(summary(f"{clean.domain} (clean)", results, "ok"))
        for row in lab.table.by_technique("throttle"):
            results = run(lab, row.url, runs, collector, out)
            lines.append(summary(f"{row.domain} ({row.trigger}, {row.hop})", results, "throttled"))
            notes.append(limits(row, results))
        for technique in LINK_TECHNIQUES if decoy_runs else ():
            row = lab.table.by_technique(technique)[0]
            set_link_condition(lab, row, True)
            try:
                results = run(lab, row.url, decoy_runs, collector, out)
            finally:
                set_link_condition(lab, row, False)
            lines.append(summary(f"{row.domain} (decoy: {technique})", results, "ok"))
    return lines, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--decoy-runs", type=int, default=20)
    args = parser.parse_args()
    with Lab() as lab, tempfile.TemporaryDirectory() as tmp:
        lines, notes = measure(lab, Path(tmp), args.runs, args.decoy_runs)
    print("| target | verdicts | seconds per test | bytes per test |")
    print("|---|---|---|---|")
    print("\n".join(lines))
    print()
    print("\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the trace in the lab, its positions over many runs and what one trace costs.

    sudo .venv/bin/python benchmarks/bench_trace.py [--runs 20]

Brings the lab up with the real collector in the net namespace, then runs the real
``netsonde-agent trace`` in the agent namespace ``--runs`` times over every row a trace can
locate (``tests.lab.positions.TRACEABLE``), and as many times over the open rows with
``--force``:

- how often each row's verdict, ``censor_ttl``, ``after_hop``, routers and ``path`` are
  exactly what ``tests.lab.positions.expected_position`` says, and how often an injected
  packet's IP TTL differs from the genuine server's;
- an open row: how often a trace shows no censor (the bar: every time);
- what one trace costs: the packets it sent (``packets_sent``: triggers, swaps and
  reference handshakes, retransmissions aside), its wall time, and the agent's own byte
  estimate (``agent.daemon.budget.trace_bytes``), read back from the wire records.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.daemon.budget import trace_bytes
from tests.lab import engine
from tests.lab.collector import LabCollector
from tests.lab.lab import Lab
from tests.lab.positions import TRACEABLE, expected_position
from tests.lab.scenarios import Scenario

INJECTED = {"rst", "fin", "data"}


def costs(records: Path) -> dict[str, int]:
    """Each trace record's estimated bytes, by URL."""
    return engine.record_costs(records, lambda m: None if m.trace is None else trace_bytes(m.trace))


def exact(row: Scenario, result: dict[str, Any]) -> tuple[bool, bool | None]:
    """Whether the row was located exactly, and (for an injected reaction) whether the
    injected packet's TTL differed from the server's."""
    want = expected_position(row)
    assert want is not None
    ev = result["evidence"]
    got = (
        result["verdict"], ev.get("censor_ttl"), ev.get("after_hop"),
        tuple(str(ev.get("routers", "")).split()), ev.get("path"),
    )  # fmt: skip
    located = got == (row.expected, want.censor_ttl, want.after_hop, want.routers, want.path)
    if ev.get("reaction") not in INJECTED:
        return located, None
    return located, ev.get("injected_ttl") not in (None, ev.get("server_ttl"))


def run(
    lab: Lab, collector: LabCollector, rows: list[Scenario], n: int, out: Path, *force: str
) -> dict[str, dict[str, Any]]:
    urls = [f"{row.url}?run={n}" for row in rows]
    options = ["--msgpack-out", str(out), *force]
    results = engine.trace(lab, urls, collector_url=collector.url, options=options)
    by_host = {str(urlsplit(r["target"]).hostname): r for r in results}
    spent = costs(out)
    for r in results:
        r["bytes"] = spent.get(r["url"], 0)
    return by_host


def cost(results: list[dict[str, Any]]) -> str:
    traces = [r for r in results if r.get("trace")]
    packets = [r["trace"]["packets_sent"] for r in traces]
    seconds = [r["ms"] / 1000 for r in traces]
    kilobytes = [r["bytes"] / 1000 for r in traces]
    return (
        f"{statistics.median(packets):.0f} (max {max(packets)}) | "
        f"{statistics.median(seconds):.1f} s (max {max(seconds):.1f}) | "
        f"{statistics.median(kilobytes):.1f} kB (max {max(kilobytes):.1f})"
    )


def measure(lab: Lab, tmp: Path, runs: int) -> list[str]:
    rows = [row for row in lab.table.rows if row.technique in TRACEABLE]
    clean = lab.table.by_technique("clean")
    seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with LabCollector(lab, tmp / "collector") as collector:
        for n in range(runs):
            out = tmp / f"records-{n}.msgpack"
            for domain, r in run(lab, collector, rows, n, out).items():
                seen[domain].append(r)
            for domain, r in run(lab, collector, clean, n, out, "--force").items():
                seen[domain].append(r)
            print(f"run {n + 1}/{runs} done", file=sys.stderr, flush=True)
    lines = []
    for row in rows:
        results = seen[row.domain]
        checks = [exact(row, r) for r in results]
        located = sum(ok for ok, _ in checks)
        told = [t for _, t in checks if t is not None]
        forensic = f"{sum(told)}/{len(told)}" if told else "n/a (no injection)"
        want = expected_position(row)
        assert want is not None
        lines.append(
            f"| {row.domain} ({row.technique}, {row.hop}) | ttl {want.censor_ttl} after "
            f"{want.after_hop}, {want.path} | {located}/{len(results)} | {forensic} | "
            f"{cost(results)} |"
        )
    for row in clean:
        results = seen[row.domain]
        quiet = sum(r["verdict"] == "ok" and "censor_ttl" not in r["evidence"] for r in results)
        lines.append(
            f"| {row.domain} (open, --force) | no censor | {quiet}/{len(results)} | n/a | "
            f"{cost(results)} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with Lab() as lab, tempfile.TemporaryDirectory() as tmp:
        lines = measure(lab, Path(tmp), args.runs)
    print("| row | expected | exact | injected told apart | packets | seconds | bytes |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

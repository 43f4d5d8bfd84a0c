"""Benchmark: `netsonde-agent probe` over the 670 URLs of the Pakistan test list, in the lab.

    sudo .venv/bin/python benchmarks/bench_probe.py [--testlist PATH] [--concurrency 32]
                                                    [--dual-stack]

Maps every host of the list onto its own lab server, with a technique that
involves no timeout (benchmarks/testlist_lab.py), starts the collector in the
net namespace, runs the real CLI in the agent namespace, and prints:
targets per second, the agent's peak RSS, the `--help` cold start, the size of
one encoded site record (median, p99) next to our JSON line, and how many
verdicts matched the table.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.testlist_lab import read_urls, table_for
from tests.lab.collector import COLLECTOR_URL, LabCollector
from tests.lab.engine import probe_argv
from tests.lab.lab import Lab
from tests.lab.scenarios import ScenarioTable
from tests.lab.shell import in_ns
from tests.shared_data import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]


def help_cold_start(runs: int = 10) -> float:
    script = REPO / ".venv" / "bin" / "netsonde-agent"
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([str(script), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def record_sizes(path: Path) -> list[int]:
    """Each record's size in bytes, negated for a record holding redirect hops."""
    import msgpack  # type: ignore[import-untyped]

    sizes, previous = [], 0
    with path.open("rb") as handle:
        unpacker = msgpack.Unpacker(handle, raw=False)
        for record in unpacker:
            offset = unpacker.tell()
            # Records with redirect hops are counted apart: the budget is a single URL's.
            sizes.append((offset - previous) * (-1 if "h" in record else 1))
            previous = offset
    return sizes


@dataclass
class ProbeRun:
    """One `netsonde-agent probe` over the list: its --json lines and what it cost."""

    lines: list[dict[str, Any]]
    record_sizes: list[int]
    elapsed: float
    peak_kb: int


def probe_list(table: ScenarioTable, urls: list[str], concurrency: int) -> ProbeRun | None:
    """Bring the lab up for ``table`` and run the CLI over ``urls`` in its agent namespace,
    with the collector as its control; None (after printing its stderr) if the CLI failed."""
    with Lab(table) as lab, tempfile.TemporaryDirectory() as tmp:
        collector = LabCollector(lab, lab.state_dir / "collector").start()
        try:
            out = Path(tmp) / "records.msgpack"
            options = ["--json", "--quiet", "--concurrency", str(concurrency)]
            argv = probe_argv(
                lab, collector_url=COLLECTOR_URL, options=[*options, "--msgpack-out", str(out)]
            )
            started = time.perf_counter()
            agent = subprocess.Popen(
                in_ns(lab.topo.ns("agent"), [*argv, *urls]), cwd=REPO,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            stdout, stderr = agent.communicate()
            elapsed = time.perf_counter() - started
            # wait4 on an already-reaped child is impossible; communicate() reaped it, so
            # read the peak from the rusage of all children instead (the agent is the largest).
            peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            if agent.returncode != 0:
                print(stderr.decode()[-2000:])
                return None
            lines = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
            return ProbeRun(lines, record_sizes(out), elapsed, peak_kb)
        finally:
            collector.stop()


def report(run: ProbeRun, expected: dict[str, str], concurrency: int) -> None:
    lines = run.lines
    verdicts = Counter(line["verdict"] for line in lines)
    wrong = [
        f"  {line['target']}: expected {want}, got {line['verdict']} {line['evidence']}"
        for line in lines
        if line["verdict"] != (want := expected.get(urlsplit(line["target"]).hostname or ""))
    ]
    right = len(lines) - len(wrong)
    json_sizes = [len(json.dumps(line)) for line in lines]
    sizes = sorted(size for size in run.record_sizes if size > 0)
    hopped = sorted(-size for size in run.record_sizes if size < 0)
    rate = len(lines) / run.elapsed
    print(
        f"targets: {len(lines)} in {run.elapsed:.1f}s = {rate:.1f} targets/s "
        f"at concurrency {concurrency} (target >= 20)"
    )
    print(f"agent peak RSS: {run.peak_kb / 1024:.1f} MB (target <= 80)")
    cold = help_cold_start()
    print(f"netsonde-agent --help cold start: {cold:.3f}s median of 10 (target <= 0.3)")
    p99 = sizes[int(len(sizes) * 0.99) - 1]
    print(
        f"single-URL record size: median {statistics.median(sizes):.0f} B, p99 {p99} B, "
        f"max {sizes[-1]} B "
        "(target median <= 600; OONI Web Connectivity JSON: 15-30 KB)"
    )
    if hopped:
        print(
            f"records with redirect hops: {len(hopped)}, median "
            f"{statistics.median(hopped):.0f} B, max {hopped[-1]} B (reported apart)"
        )
    print(f"our --json line, for comparison: median {statistics.median(json_sizes):.0f} B")
    print(f"verdicts matching the table: {right}/{len(lines)}; {dict(verdicts.most_common())}")
    print("\n".join(wrong))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testlist", type=Path, default=SHARED_DATA / "testlist-pk.csv")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--dual-stack", action="store_true", help="every site on IPv6 too (default: IPv4 only)"
    )
    args = parser.parse_args()
    urls = read_urls(args.testlist)
    table, urls = table_for(urls, args.testlist, dual_stack=args.dual_stack)
    expected = {row.domain: row.expected for row in table.rows}
    print(f"{len(urls)} URLs, {len(table.rows)} hosts; bringing the lab up ...", flush=True)
    run = probe_list(table, urls, args.concurrency)
    if run is None:
        return 1
    report(run, expected, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the agent daemon (`netsonde-agent run`) idle and over the Pakistan test list.

    sudo .venv/bin/python benchmarks/bench_agent.py [--testlist PATH] [--concurrency 32]

Brings up the 670-URL lab of benchmarks/bench_probe.py (benchmarks/testlist_lab.py) with the
collector in the net namespace, and runs two enrolled daemons in the agent namespace:

- idle: an empty test list and nothing due (6 h interval, 5 min checks) - its RSS once it
  has exec'd into lean idle mode (docs/design/005-lean-idle.md) and settled;
- busy: the 670 URLs in one run, uploading every second - its peak RSS (VmHWM) until the
  spool is drained, CPU seconds per target (utime + stime from /proc, minus what the idle
  daemon spent starting), and the signed batch body bytes per measurement uploaded
  (the daemon's own count, ``uploaded_bytes``, over the measurements acknowledged).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.testlist_lab import read_urls, table_for
from tests.lab.agent import LabAgent
from tests.lab.collector import COLLECTOR_URL, LabCollector
from tests.lab.lab import Lab
from tests.shared_data import SHARED_DATA

TICKS = os.sysconf("SC_CLK_TCK")
# The libraries the agent is built on (the project's choices, DEVELOPERS.md), imported by a
# bare interpreter and nothing else: the floor under any one-process daemon's idle RSS.
LEAN_FLOOR = """
import asyncio, sqlite3, logging, tomllib, json, http.client, ssl
import apscheduler.schedulers.asyncio, apscheduler.triggers.interval
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import msgpack
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmRSS")))
"""
FLOOR = """
import asyncio, sqlite3, logging, tomllib, json
import aiohttp
import apscheduler.schedulers.asyncio, apscheduler.triggers.interval
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import dns.message, dns.query, dns.rdatatype
import msgpack
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmRSS")))
"""


def floor_kb(code: str = FLOOR) -> int:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout)


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


@dataclass
class Drained:
    """What the busy daemon's one run cost, from its status and /proc once its spool drained."""

    measured: int
    elapsed: float
    cpu: float
    peak_kb: int
    uploaded: int
    bandwidth_used: int


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--testlist", type=Path, default=SHARED_DATA / "testlist-pk.csv")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--settle", type=float, default=8.0, help="idle seconds before RSS")
    return parser.parse_args()


def print_floors() -> None:
    print(
        f"floor: an interpreter importing asyncio, aiohttp, apscheduler, cryptography (Ed25519),"
        f" dnspython, msgpack, sqlite3 and nothing else: RSS {floor_kb() / 1024:.1f} MB"
    )
    print(
        f"lean floor: the same without aiohttp and dnspython, with http.client and ssl: RSS "
        f"{floor_kb(LEAN_FLOOR) / 1024:.1f} MB"
    )


def settle_lean(idle: LabAgent, settle: float) -> float | None:
    """Start the idle daemon, wait until it is in lean mode and ``settle`` seconds more, print
    its RSS; the CPU seconds it took to start and switch, or None if it did not get there."""
    process = idle.start()
    started = time.monotonic()
    while idle.status().get("meta", {}).get("mode") != "lean":
        if process.poll() is not None or time.monotonic() - started > 120:
            print(idle.log_text()[-3000:])
            return None
        time.sleep(0.5)
    lean_after = time.monotonic() - started
    time.sleep(settle)
    rss, hwm = memory_kb(process.pid)
    cpu = cpu_seconds(process.pid)
    print(
        f"idle daemon (lean): RSS {rss / 1024:.1f} MB (peak since the exec "
        f"{hwm / 1024:.1f} MB), lean {lean_after:.1f}s after start, measured "
        f"{settle:.0f}s later; {cpu:.2f} CPU s to start and switch "
        "(target RSS <= 40 MB)",
        flush=True,
    )
    return cpu


def drain(busy: LabAgent) -> Drained | None:
    """Start the busy daemon and poll it until its first run is measured and uploaded (the
    spool empty); None if it exited or took over 10 minutes."""
    started = time.monotonic()
    process = busy.start()
    peak = 0
    while True:
        # The most seen: once drained, the daemon execs into lean mode, which starts a fresh
        # VmHWM.
        peak = max(peak, memory_kb(process.pid)[1])
        status = busy.status()
        totals = status.get("totals", {})
        if totals.get("runs", 0) >= 1 and status["spool"]["records"] == 0:
            break
        if process.poll() is not None or time.monotonic() - started > 600:
            print(busy.log_text()[-3000:])
            return None
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(process.pid)
    peak = max(peak, memory_kb(process.pid)[1])
    return Drained(
        totals["acked"], elapsed, cpu, peak, totals["uploaded_bytes"], status["bandwidth"]["used"]
    )


def report_busy(run: Drained, idle_cpu: float, concurrency: int) -> None:
    measured = max(1, run.measured)
    per_target = (run.cpu - idle_cpu) / measured
    print(
        f"busy daemon: {run.measured} measurements made and acknowledged in {run.elapsed:.1f}s "
        f"at concurrency {concurrency}"
    )
    print(f"busy daemon peak RSS (VmHWM): {run.peak_kb / 1024:.1f} MB (target <= 80 MB)")
    print(
        f"CPU: {run.cpu:.2f} s in all, {per_target * 1000:.1f} ms per target "
        f"(minus the {idle_cpu:.2f} s a start costs)"
    )
    print(
        f"uploaded: {run.uploaded} B of signed batch bodies = "
        f"{run.uploaded / measured:.0f} B per measurement"
    )
    print(
        f"bandwidth estimate (limits.daily_bandwidth's count): {run.bandwidth_used / 1e6:.2f} MB"
        f" = {run.bandwidth_used / measured:.0f} B per target, uploads included"
    )


def run_daemons(
    lab: Lab,
    tmp: Path,
    collector: LabCollector,
    urls: list[str],
    args: argparse.Namespace,
    agents: list[LabAgent],
) -> int:
    """The idle daemon, then the busy one; each is added to ``agents`` as soon as it exists,
    for the caller to kill if this fails."""
    idle = LabAgent(
        lab, tmp / "idle", collector_url=COLLECTOR_URL, urls=[],
        schedule={"interval": "6h", "connectivity_check": "5m", "upload": "1m"},
    )  # fmt: skip
    agents.append(idle)
    idle.enroll(collector.db_url)
    idle_cpu = settle_lean(idle, args.settle)
    if idle_cpu is None:
        return 1

    busy = LabAgent(
        lab, tmp / "busy", collector_url=COLLECTOR_URL, urls=urls,
        schedule={"interval": "6h", "connectivity_check": "5m", "upload": "1s"},
        probe={"concurrency": args.concurrency},
    )  # fmt: skip
    agents.append(busy)
    busy.enroll(collector.db_url)
    run = drain(busy)
    if run is None:
        return 1
    report_busy(run, idle_cpu, args.concurrency)
    for agent in (idle, busy):
        code, took = agent.terminate()
        print(f"SIGTERM: exit {code} in {took:.2f}s")
    return 0


def main() -> int:
    args = parse_args()
    urls = read_urls(args.testlist)
    table, urls = table_for(urls, args.testlist)
    print_floors()
    print(f"{len(urls)} URLs, {len(table.rows)} hosts; bringing the lab up ...", flush=True)
    with Lab(table) as lab, tempfile.TemporaryDirectory() as tmp:
        collector = LabCollector(lab, lab.state_dir / "collector").start()
        agents: list[LabAgent] = []
        try:
            return run_daemons(lab, Path(tmp), collector, urls, args, agents)
        finally:
            for agent in agents:
                if agent.process and agent.process.poll() is None:
                    agent.process.kill()
            collector.stop()


if __name__ == "__main__":
    sys.exit(main())

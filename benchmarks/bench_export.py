"""Benchmark: exporting every stored measurement, by the CLI and by the API, in bounded memory.

    .venv/bin/python benchmarks/bench_export.py [--sizes 100000,1000000] [--formats jsonl,ooni]
        [--paths cli,api] [--cache-dir /var/cache/netsonde-bench]

For each size, a SQLite store filled by benchmarks/fill_store.py (seed 1, signed batches),
kept in --cache-dir so that a rerun starts at once (the fill's time is printed when it
runs). Then, for each format:

- cli: `netsonde-collector export --format F --out -` in its own process, its output
  counted and dropped; its peak RSS is its VmHWM, read while it runs (its ``ru_maxrss``
  would count this process's memory too: Linux carries it over the fork and exec).
- api: `netsonde-collector serve` on loopback, and GET /api/v1/export?format=F read to the
  end by this process; the server's peak RSS is its VmHWM, with its RSS once started.

Prints rows/s, MB/s and peak RSS: the peak must not grow with the number of rows.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fill_store import fill
from tests import REPO
from tests.collector.process import CollectorProcess, collector_cli

READ = 1 << 20
SEED = 1


def rss_kb(pid: int) -> tuple[int, int]:
    """The process's RSS now and its peak (VmHWM), in KiB; 0 once it has exited."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    now, peak = fields.get("VmRSS", "0"), fields.get("VmHWM", "0")
    return int(now.split()[0]), int(peak.split()[0])


def filled(cache: Path, n: int) -> str:
    """The URL of a store of ``n`` measurements, filled now unless cached."""
    path = cache / f"fill-{n}-seed{SEED}.db"
    if not path.exists():
        partial = cache / f".fill-{n}-seed{SEED}.partial.db"
        for stale in cache.glob(f"{partial.name}*"):
            stale.unlink()
        started = time.perf_counter()
        fill(f"sqlite:///{partial}", n, SEED)
        print(
            f"filled {n:,} measurements in {time.perf_counter() - started:.1f} s "
            f"({path.name}, {partial.stat().st_size / 1e9:.2f} GB)",
            flush=True,
        )
        partial.rename(path)
    return f"sqlite:///{path}"


def count(stream: object, started: float, pid: int | None = None) -> tuple[int, int, float, int]:
    """Lines and bytes read from ``stream`` (a binary file), the seconds it took, and the
    peak RSS of process ``pid`` meanwhile (KiB)."""
    lines = size = peak = 0
    while chunk := stream.read(READ):  # type: ignore[attr-defined]
        lines += chunk.count(b"\n")
        size += len(chunk)
        if pid is not None:
            peak = max(peak, rss_kb(pid)[1])
    return lines, size, time.perf_counter() - started, peak


def via_cli(db: str, fmt: str) -> tuple[int, int, float, int]:
    command = collector_cli("export", "--db", db, "--format", fmt, "--out", "-")
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines, size, elapsed, peak = count(child.stdout, started, child.pid)
    if child.wait() != 0:
        raise RuntimeError(f"export exited {child.returncode}")
    return lines, size, elapsed, peak


def via_api(db: str, fmt: str, log: Path) -> tuple[int, int, float, int, int]:
    serve = CollectorProcess(db, log)
    try:
        serve.wait_listening()
        time.sleep(0.5)
        idle, _ = rss_kb(serve.pid)
        started = time.perf_counter()
        url = f"{serve.url}/api/v1/export?format={fmt}"
        with urllib.request.urlopen(url, timeout=600) as response:
            lines, size, elapsed, _ = count(response, started)
        _, peak = rss_kb(serve.pid)
    finally:
        serve.stop()
    return lines, size, elapsed, idle, peak


def report(path: str, n: int, fmt: str, lines: int, size: int, elapsed: float, rss: str) -> None:
    if lines != n:
        raise RuntimeError(f"{path} {fmt}: {lines:,} lines for {n:,} measurements")
    print(
        f"{path:>3} {fmt:>5} {n:>9,} rows: {elapsed:7.1f} s, {n / elapsed:7,.0f} rows/s, "
        f"{size / elapsed / 1e6:5.1f} MB/s, {size / n:6,.0f} B/row; {rss}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--formats", default="jsonl,ooni")
    parser.add_argument("--paths", default="cli,api")
    parser.add_argument("--cache-dir", type=Path, default=Path("/var/cache/netsonde-bench"))
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    for n in map(int, args.sizes.split(",")):
        db = filled(args.cache_dir, n)
        for fmt in args.formats.split(","):
            if "cli" in args.paths:
                lines, size, elapsed, peak = via_cli(db, fmt)
                report("cli", n, fmt, lines, size, elapsed, f"peak RSS {peak / 1024:.0f} MiB")
            if "api" in args.paths:
                log = args.cache_dir / "serve.log"
                lines, size, elapsed, idle, peak = via_api(db, fmt, log)
                rss = f"server RSS {idle / 1024:.0f} MiB started, peak {peak / 1024:.0f} MiB"
                report("api", n, fmt, lines, size, elapsed, rss)
    return 0


if __name__ == "__main__":
    sys.exit(main())

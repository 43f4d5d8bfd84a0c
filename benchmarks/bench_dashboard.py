"""Benchmark: the dashboard's page loads in chromium, on a store of 1M measurements.

    .venv/bin/python benchmarks/bench_dashboard.py [--n 1000000] [--loads 7]

Fills a SQLite store with ``benchmarks/fill_store.py`` (8 weeks up to now, 200 domains, 6
networks; kept in --db and reused while it is less than a day old), starts the real
collector on it (``netsonde-collector serve``, on 127.0.0.1) and loads each page in Debian's
headless chromium (tests/browser/chromium.py) --loads times, after one load to warm up. A
load's time is the browser's own navigation timing, loadEventEnd - startTime: the request,
the collector's queries and rendering, the transfer and the page's layout. Prints the
median and the slowest per page, and the bytes sent (compressed) and the page's size.
Target: the overview and the matrix in at most 1 s (issue 20).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fill_store import fill
from tests.browser import chromium

REPO = Path(__file__).resolve().parents[1]
PAGES = (
    ("overview", "/"),
    ("matrix", "/matrix"),
    ("matrix, all domains", "/matrix?show=all"),
    ("overview, 90 days", "/?days=90"),
    ("matrix, 90 days", "/matrix?days=90"),
    ("timeline of a domain", "/timeline?domain=site000.example.org"),
    ("timeline of a network", "/timeline?asn=17557"),
    ("outages", "/outages"),
)
TARGETS = {"overview": 1000.0, "matrix": 1000.0}
FRESH_S = 86_400  # the pages show the last days: a store filled longer ago shows less


def store(path: Path, n: int, seed: int) -> str:
    url = f"sqlite:///{path}"
    if path.exists() and time.time() - path.stat().st_mtime < FRESH_S:
        print(f"reusing {path}", flush=True)
        return url
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"filling {path} with {n:,} measurements ...", flush=True)
    fill(url, n, seed)
    print(f"filled in {time.monotonic() - started:.0f} s", flush=True)
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(url: str, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = directory / "collector.log"
    argv = [sys.executable, "-m", "collector.cli", "serve", "--db", url]
    argv += ["--listen", f"127.0.0.1:{port}", "--key-file", str(directory / "collector-key.pem")]
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while f"listening on {base}" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"the collector did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    return process, base


def measure(driver: Any, url: str, loads: int) -> dict[str, float]:
    driver.get(url)  # warm-up: the stylesheet is cached after it, as for any visitor
    times = []
    for _ in range(loads):
        driver.get(url)
        times.append(chromium.load_ms(driver))
    sizes = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return [n.transferSize, n.decodedBodySize];"
    )
    return {
        "median": statistics.median(times),
        "max": max(times),
        "sent": float(sizes[0]),
        "size": float(sizes[1]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loads", type=int, default=7)
    parser.add_argument("--db", type=Path, default=None, help="the store (default under /var/tmp)")
    args = parser.parse_args()
    if (reason := chromium.missing()) is not None:
        sys.exit(reason)
    directory = Path("/var/tmp/netsonde-bench")
    directory.mkdir(parents=True, exist_ok=True)
    path = args.db or directory / f"dashboard-{args.n}-{args.seed}.db"
    url = store(path, args.n, args.seed)
    process, base = serve(url, directory)
    failed = False
    try:
        with chromium.browser() as driver:
            print("\n| page | median | slowest | sent | page size |\n|---|---|---|---|---|")
            for name, page in PAGES:
                got = measure(driver, base + page, args.loads)
                target = TARGETS.get(name)
                mark = "" if target is None else (" ok" if got["median"] <= target else " SLOW")
                failed |= mark == " SLOW"
                print(
                    f"| {name} (`{page}`) | **{got['median']:.0f} ms**{mark} | "
                    f"{got['max']:.0f} ms | {got['sent'] / 1024:.1f} KiB | "
                    f"{got['size'] / 1024:.1f} KiB |",
                    flush=True,
                )
    finally:
        process.terminate()
        process.wait(10)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

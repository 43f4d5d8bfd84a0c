"""Benchmark: end-to-end ingest of one collector process, batches of 500 realistic records.

    .venv/bin/python benchmarks/bench_ingest_http.py [--batches 80] [--agents 20]
        [--concurrency 4] [--pg-url URL] [--sqlite-only] [--runs N]

Starts a real `netsonde-collector serve` on loopback (SQLite in a temporary directory,
then a throwaway PostgreSQL database), with agents enrolled beforehand, and POSTs signed
batches (the lab's recorded measurements cloned with fresh ids, built and signed before
the clock starts) to /api/v1/measurements from `--concurrency` connections. Everything
the collector does counts: HTTP, signature, the schema check of every record, storage,
rollups. Prints measurements stored per second of wall time and the collector's CPU
seconds per 1,000 measurements. The client is a separate process from the collector.
With ``--runs N``, the backends take turns, each run on a fresh store with the same batches
(the machine's speed drifts between runs), and the median of each is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.wire.batch import encode_batch
from agent.wire.keys import public_key_bytes
from benchmarks.bench_ingest import pg_admin_url, throwaway_database
from collector.storage import open_storage
from tests.collector.process import CollectorProcess
from tests.collector.storage.records import clones

BATCH = 500


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / 100.0


def sign(agents: int, batches: int) -> tuple[list[Ed25519PrivateKey], list[bytes]]:
    """The agents' keys, and every batch signed round-robin over them, 1 s apart."""
    keys = [Ed25519PrivateKey.generate() for _ in range(agents)]
    now = int(time.time() * 1000)
    measurements = clones(batches * BATCH, start_ms=now - batches * BATCH * 1000)
    signed = [
        encode_batch(
            f"bench-{n % agents}",
            n // agents + 1,
            measurements[n * BATCH : (n + 1) * BATCH],
            keys[n % agents],
            created_ms=now,
        )
        for n in range(batches)
    ]
    return keys, signed


def enroll(db: str, keys: list[Ed25519PrivateKey]) -> None:
    """The agents straight into a fresh store, as `enroll` + POST /enroll would."""
    store = open_storage(db)
    for index, key in enumerate(keys):
        store.add_agent(f"bench-{index}", "bench", public_key_bytes(key), 0)
    store.close()


async def upload(base: str, batches: list[bytes], concurrency: int) -> int:
    queue = list(reversed(batches))
    stored = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal stored
        while queue:
            body = queue.pop()
            async with session.post(
                f"{base}/api/v1/measurements",
                data=body,
                headers={"Content-Type": "application/msgpack"},
            ) as response:
                answer = await response.json()
                if response.status != 200:
                    raise SystemExit(f"upload refused: {response.status} {answer}")
                stored += len(answer["stored"])

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return stored


def run(
    name: str, db: str, keys: list[Ed25519PrivateKey], batches: list[bytes], concurrency: int
) -> float:
    """One run on the fresh store ``db``: measurements stored per second."""
    enroll(db, keys)
    with tempfile.TemporaryDirectory() as tmp:
        serve = CollectorProcess(db, Path(tmp) / "serve.log")
        try:
            serve.wait_listening()
            cpu_before = cpu_seconds(serve.pid)
            client_before = time.process_time()
            started = time.perf_counter()
            try:
                stored = asyncio.run(upload(serve.url, batches, concurrency))
            except aiohttp.ClientError as exc:
                state = (
                    "running"
                    if serve.process.poll() is None
                    else f"exited {serve.process.returncode}"
                )
                raise SystemExit(
                    f"{name}: upload failed: {exc!r}; the collector: {state}\n"
                    + serve.log.read_text()[-3000:]
                ) from None
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(serve.pid) - cpu_before
            client_cpu = time.process_time() - client_before
        finally:
            serve.stop()
    if stored != len(batches) * BATCH:
        raise SystemExit(f"{name}: {stored} stored, expected {len(batches) * BATCH}")
    print(
        f"{name}: {stored / elapsed:,.0f} measurements/s end to end "
        f"({stored:,} in {elapsed:.2f} s; CPU per 1k: collector {cpu / stored * 1000:.3f} s, "
        f"this client {client_cpu / stored * 1000:.3f} s)"
    )
    return stored / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=80)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--pg-url", help="an admin URL; a throwaway database is made there")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--runs", type=int, default=1, help="runs per backend; prints the median")
    args = parser.parse_args()
    print(
        f"{args.batches} batches of {BATCH} from {args.agents} agents, "
        f"{args.concurrency} connections"
    )
    keys, batches = sign(args.agents, args.batches)
    rates: dict[str, list[float]] = {}
    url = None if args.sqlite_only else pg_admin_url(args.pg_url)
    # Runs alternate between the backends, each on a fresh store with the same batches:
    # the machine's speed drifts, and a median over interleaved runs is the fair figure.
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            db = f"sqlite:///{tmp}/bench.db"
            rates.setdefault("SQLite", []).append(
                run("SQLite", db, keys, batches, args.concurrency)
            )
        if url is not None:
            with throwaway_database(url) as database:
                rate = run("PostgreSQL", database, keys, batches, args.concurrency)
                rates.setdefault("PostgreSQL", []).append(rate)
    if args.runs > 1:
        for name, values in rates.items():
            print(
                f"{name}: median {statistics.median(values):,.0f} measurements/s over "
                f"{len(values)} runs (min {min(values):,.0f}, max {max(values):,.0f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: what keeping signed batches costs, and what a bundle costs to make and check.

    .venv/bin/python benchmarks/bench_evidence.py [--batches 40] [--size 500]

Realistic signed batches (the lab's recorded measurements, cloned with fresh ids, signed by
one agent key) are ingested as the collector ingests them (``store_signed_batch``) into a
temporary SQLite store twice: keeping each batch's signed body (migration 0011), and not
(as before 0011). Prints the store's size per 1,000 measurements both ways, ingest
throughput both ways, then the time to build a bundle of every measurement, its size, and
the standalone verifier's time to check it (docs/design/007-evidence.md quotes them).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.wire.batch import encode_batch
from agent.wire.keys import public_key_bytes
from collector.evidence.bundle import build_bundle
from collector.evidence.netsonde_verify import verify_file
from collector.evidence.query import EvidenceQuery
from collector.ingest.accept import batch_seq, store_signed_batch
from collector.ingest.verify import read_batch_envelope
from collector.storage import Storage, open_storage
from tests.collector.storage.records import clones

AGENT = "agent-bench"


def signed_batches(count: int, size: int, key: Ed25519PrivateKey, now: int) -> list[bytes]:
    start = now - count * size * 1000 - 60_000
    return [
        encode_batch(AGENT, seq, clones(size, start + (seq - 1) * size * 1000), key, created_ms=now)
        for seq in range(1, count + 1)
    ]


def ingest(store: Storage, batches: list[bytes], now: int, keep: bool) -> float:
    started = time.perf_counter()
    for data in batches:
        envelope = read_batch_envelope(data)
        seq = batch_seq(envelope) if keep else None
        store_signed_batch(store, envelope, now, 64500, "PK", seq)
    return time.perf_counter() - started


def size_on_disk(store: Storage) -> int:
    with store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        page = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
    return int(pages) * int(page)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--size", type=int, default=500)
    args = parser.parse_args()
    key = Ed25519PrivateKey.generate()
    now = int(time.time() * 1000)
    batches = signed_batches(args.batches, args.size, key, now)
    total = args.batches * args.size
    print(f"{args.batches} signed batches of {args.size}: {sum(map(len, batches)):,} bytes")
    with tempfile.TemporaryDirectory() as directory:
        sizes, stores = {}, {}
        for keep in (False, True):
            store = open_storage(f"sqlite:///{directory}/{keep}.db")
            store.add_agent(AGENT, "bench", public_key_bytes(key), 0)
            elapsed = ingest(store, batches, now, keep)
            sizes[keep] = size_on_disk(store)
            stores[keep] = store
            label = "batches kept" if keep else "records only"
            print(
                f"{label}: {sizes[keep] / total * 1000 / 1e6:.2f} MB per 1,000 measurements, "
                f"ingest {total / elapsed:,.0f} measurements/s"
            )
        print(f"keeping the batches: x{sizes[True] / sizes[False]:.2f} the store's size")
        query = EvidenceQuery(None, (), 0, now + 1)
        out = io.BytesIO()
        started = time.perf_counter()
        result = build_bundle(stores[True], query, Ed25519PrivateKey.generate(), out)
        built = time.perf_counter() - started
        started = time.perf_counter()
        report = verify_file(io.BytesIO(out.getvalue()))
        checked = time.perf_counter() - started
        assert report.ok, report.failures
        assert result.summary["measurements"] == total
        print(
            f"bundle of {total:,}: {len(out.getvalue()) / 1e6:.1f} MB, built in {built:.2f} s, "
            f"verified in {checked:.2f} s"
        )
        for store in stores.values():
            store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

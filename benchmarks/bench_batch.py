"""Benchmark: signing and verifying a batch of 500 realistic measurements.

    .venv/bin/python benchmarks/bench_batch.py [--runs 5]

The measurements are the censor lab's recorded ones (tests/agent/recorded), cloned with
fresh ids. Verifying includes checking every measurement against the schema, which is
what the collector must do before it stores anything (docs/design/004-ingest.md); the
full decode into objects, which ingest no longer does, is timed for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.wire.batch import encode_batch
from collector.ingest.verify import read_batch_envelope, verify_batch
from tests.collector.storage.records import clones


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=500)
    args = parser.parse_args()
    now = int(time.time() * 1000)
    measurements = clones(args.size, start_ms=now - args.size * 1000)
    key = Ed25519PrivateKey.generate()
    signs, verifies, decodes = [], [], []
    for _ in range(args.runs):
        started = time.perf_counter()
        data = encode_batch("bench-agent", 1, measurements, key, created_ms=now)
        signs.append(time.perf_counter() - started)
        started = time.perf_counter()
        batch = verify_batch(read_batch_envelope(data), key.public_key(), now_ms=now)
        verifies.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert len(batch.measurements) == args.size
        decodes.append(time.perf_counter() - started)
    sign, verify = statistics.median(signs), statistics.median(verifies)
    decode = statistics.median(decodes)
    print(
        f"batch of {args.size}: {len(data):,} bytes ({len(data) / args.size:.0f} per measurement)"
    )
    print(f"encode + sign: {sign * 1000:.0f} ms ({args.size / sign:,.0f} measurements/s)")
    print(f"read + verify: {verify * 1000:.0f} ms ({args.size / verify:,.0f} measurements/s)")
    print(
        f"decoding the verified records to objects: {decode * 1000:.0f} ms "
        f"({decode / verify:.1f}x the verify, in the same run)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the collector's memory while it serves uploads.

    .venv/bin/python benchmarks/bench_collector_rss.py [--batches 40] [--db URL]

Starts `netsonde-collector serve` on loopback with SQLite (or --db), enrols an agent,
uploads batches of 500 realistic measurements (the lab's recorded ones with fresh ids)
one after another, and prints the process's RSS idle, after the uploads, and its peak,
with the upload throughput seen from outside.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.wire.batch import encode_batch
from agent.wire.keys import public_key_bytes
from tests.collector.process import REPO, CollectorProcess, collector_cli
from tests.collector.storage.records import clones


def rss_kb(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def post(url: str, body: bytes, content_type: str) -> dict[str, object]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--db")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or f"sqlite:///{tmp}/netsonde.db"
        token = subprocess.run(
            collector_cli("enroll", "--name", "bench", "--db", db),
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.split()[0]  # fmt: skip
        serve = CollectorProcess(db, Path(tmp) / "serve.log")
        try:
            serve.wait_listening()
            base = serve.url
            idle, _ = rss_kb(serve.pid)
            key = Ed25519PrivateKey.generate()
            public_key = base64.b64encode(public_key_bytes(key)).decode()
            enrol = {"token": token, "public_key": public_key}
            answer = post(f"{base}/api/v1/enroll", json.dumps(enrol).encode(), "application/json")
            agent_id = str(answer["agent_id"])
            now = int(time.time() * 1000)
            measurements = clones(args.batches * 500, start_ms=now - args.batches * 500_000)
            batches = [
                encode_batch(agent_id, seq, measurements[seq * 500 : (seq + 1) * 500], key)
                for seq in range(args.batches)
            ]
            started = time.perf_counter()
            stored = 0
            for batch in batches:
                answer = post(f"{base}/api/v1/measurements", batch, "application/msgpack")
                stored += len(answer["stored"])  # type: ignore[arg-type]
                time.sleep(0.1)  # the default rate limit: 10 batches/s per agent
            elapsed = time.perf_counter() - started
            after, peak = rss_kb(serve.pid)
        finally:
            serve.stop()
    rate = stored / elapsed
    print(
        f"{stored} measurements in {args.batches} batches of 500, {elapsed:.1f}s "
        f"({rate:,.0f} measurements/s including a 0.1 s pause per batch)"
    )
    print(
        f"collector RSS: idle {idle / 1024:.1f} MB, after uploads {after / 1024:.1f} MB, "
        f"peak {peak / 1024:.1f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

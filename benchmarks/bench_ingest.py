"""Benchmark: collector storage ingest throughput, one process, batches of 500 records.

    .venv/bin/python benchmarks/bench_ingest.py [--batches 100] [--pg-url URL]

Realistic records: the lab's recorded measurements (tests/agent/recorded) cloned with
fresh UUIDv7 ids, encoded to wire records beforehand, so the figure is the store's alone.
Prints measurements/s for SQLite (a temporary file) and for PostgreSQL (a throwaway
database on --pg-url, else NETSONDE_TEST_PG_URL, else deploy/postgres-dev.sh; skipped
when none is available), the on-disk size per 1,000 measurements, and a re-ingest of
the same batches (all duplicates).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, make_url, text

from collector.storage import IngestRecord, Storage, open_storage
from tests.collector.storage.records import AGENT, batch

REPO = Path(__file__).resolve().parents[1]
BATCH = 500


def run(store: Storage, batches: list[list[IngestRecord]]) -> tuple[float, float]:
    store.add_agent(AGENT, "bench", b"\x00" * 32, 0)
    started = time.perf_counter()
    for records in batches:
        result = store.ingest(AGENT, records, 64500, "PK", 0)
        assert len(result.stored) == len(records)
    elapsed = time.perf_counter() - started
    again = time.perf_counter()
    for records in batches:
        assert not store.ingest(AGENT, records, 64500, "PK", 0).stored
    duplicate_rate = sum(map(len, batches)) / (time.perf_counter() - again)
    return sum(map(len, batches)) / elapsed, duplicate_rate


def bench_sqlite(batches: list[list[IngestRecord]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        store = open_storage(f"sqlite:///{path}")
        rate, again = run(store, batches)
        store.close()  # the last connection to close checkpoints the WAL into the file
        size = path.stat().st_size
    n = sum(map(len, batches))
    print(f"SQLite:     {rate:,.0f} measurements/s; {size / n * 1000 / 1024:,.0f} KiB per 1k")
    print(f"  re-ingest of the same batches (all duplicates): {again:,.0f}/s")


def pg_admin_url(given: str | None) -> str | None:
    url = given or os.environ.get("NETSONDE_TEST_PG_URL")
    if url:
        return url
    script = REPO / "deploy" / "postgres-dev.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"PostgreSQL: skipped ({done.stderr.strip()})")
        return None
    return done.stdout.strip()


@contextlib.contextmanager
def throwaway_database(admin_url: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    admin = make_url(admin_url).set(drivername="postgresql+psycopg")
    name = f"netsonde_bench_{secrets.token_hex(4)}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def bench_postgres(batches: list[list[IngestRecord]], given: str | None) -> None:
    url = pg_admin_url(given)
    if url is None:
        return
    with throwaway_database(url) as database:
        store = open_storage(database)
        rate, again = run(store, batches)
        with store.engine.connect() as conn:
            size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        store.close()
        n = sum(map(len, batches))
        print(f"PostgreSQL: {rate:,.0f} measurements/s; {size / n * 1000 / 1024:,.0f} KiB per 1k")
        print(f"  re-ingest of the same batches (all duplicates): {again:,.0f}/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--pg-url", help="an admin URL; a throwaway database is made there")
    args = parser.parse_args()
    started = time.perf_counter()
    records = batch(args.batches * BATCH)
    prepare = len(records) / (time.perf_counter() - started)
    size = sum(len(r.record) for r in records) / len(records)
    print(f"{len(records):,} records of {size:,.0f} bytes on average, in batches of {BATCH}")
    print(f"  (building IngestRecords, encoding included: {prepare:,.0f}/s, not counted below)")
    batches = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
    bench_sqlite(batches)
    bench_postgres(batches, args.pg_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The spool under kill -9: every record add() returned for is there after a restart.

A child process adds records in a loop and writes each id out only after add() returns; the
test kills it with SIGKILL at a random moment, reopens the spool and checks that every id it
saw is stored (or, with a small cap, was evicted oldest first and counted), and that SQLite
finds the file sound. Power loss cannot be simulated here; synchronous=FULL covers that.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.daemon.spool import Spool
from tests import REPO
from tests.agent.observations import RECORDED as RECORDED_DIR

RUNS = 4

# Ids are written with os.write to a file, not a pipe: a pipe the test is not draining would
# block the child in write() instead of somewhere inside add().
CHILD = """
import os, sys
from pathlib import Path
import msgpack
from agent.daemon.spool import Spool
from agent.wire.record import encode_measurement, measurement_from_obj

path, max_bytes, run, recorded = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with open(recorded, "rb") as fh:
    records = [encode_measurement(measurement_from_obj(o)) for o in msgpack.Unpacker(fh, raw=False)]
spool = Spool.open(path, max_bytes=max_bytes)
i = 0
while True:
    id_ = f"{run}-{i:07d}"
    spool.add(records[i % len(records)], id_, i)
    os.write(1, id_.encode() + b"\\n")
    i += 1
"""
RECORDED = RECORDED_DIR / "with-control.msgpack"


def _run_and_kill(path: Path, max_bytes: int, run: str, out: Path, rng: random.Random) -> list[str]:
    """Starts the child, kills it with SIGKILL mid-loop, returns the ids it reported."""
    with out.open("wb") as fh:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(max_bytes), run, str(RECORDED)],
            stdout=fh,
            cwd=REPO,
        )
    try:
        deadline = time.monotonic() + 10
        while out.stat().st_size == 0:  # started and adding
            assert child.poll() is None, f"the child exited with {child.returncode}"
            assert time.monotonic() < deadline, "the child never added a record"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.25))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    lines = out.read_bytes().split(b"\n")
    return [line.decode() for line in lines[:-1]]  # the last piece is unterminated, if any


def _check_sound(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = conn.execute("SELECT coalesce(sum(length(record)), 0) FROM records").fetchone()
        counted = conn.execute("SELECT value FROM meta WHERE key = 'stored_bytes'").fetchone()
        assert stored == counted  # the running byte total committed with the rows


@pytest.mark.parametrize("max_bytes", [1 << 26, 6000], ids=["no-eviction", "evicting"])
def test_kill_9_loses_nothing_add_returned_for(tmp_path: Path, max_bytes: int) -> None:
    rng = random.Random()
    path = tmp_path / "spool.db"
    printed: list[str] = []
    # The same file across runs: each start also recovers the WAL the last kill left behind.
    for run in range(RUNS):
        printed += _run_and_kill(path, max_bytes, f"{run:02d}", tmp_path / f"out{run}", rng)
        assert printed, "the child reported nothing"
        _check_sound(path)
        with Spool.open(path, max_bytes=max_bytes) as spool:
            present = [r.id for r in spool.peek(1 << 30)]
            evictions = spool.evictions()
            assert spool.depth()[0] == len(present)
            totals = spool.totals()
        # The agent's own counters moved in the records' transactions: kill -9 cannot
        # desynchronise them (nothing was acknowledged here).
        assert totals == {
            "spooled": evictions + len(present),
            "acked": 0,
            "evicted": evictions,
            "waiting": len(present),
        }
        # Insertion order is id order, and peek is oldest first.
        assert present == sorted(present)
        present_set = set(present)
        missing = [id_ for id_ in printed if id_ not in present_set]
        if max_bytes > 1 << 20:
            assert missing == []
            assert evictions == 0
        else:
            # Only evictions lose records, oldest first, and every one is counted. At most one
            # record per run was committed but killed before the child reported it.
            assert missing == printed[: len(missing)]
            assert len(missing) <= evictions
            assert len(printed) <= evictions + len(present) <= len(printed) + run + 1

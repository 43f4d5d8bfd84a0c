"""The collector end to end: the agent's results, uploaded as signed batches from behind
the censors, show up in /api/v1/blocking as the scenario table expects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lab import engine
from tests.lab.collector import LabCollector, blocking_mismatches
from tests.lab.lab import REPO_ROOT, Lab

pytestmark = pytest.mark.lab


def fetch_json(lab: Lab, url: str) -> Any:
    script = (
        "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=10).read().decode())"
    )
    done = lab.run("agent", [sys.executable, "-c", script, url], timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_uploaded_results_fill_the_blocking_matrix(
    lab: Lab, collector: LabCollector, tmp_path: Path
) -> None:
    records = tmp_path / "records.msgpack"
    measured = engine.measure_table(
        lab, collector_url=collector.url, msgpack_out=records, throttle_rows=True
    )
    enrol = subprocess.run(
        [sys.executable, "-m", "collector.cli", "enroll", "--name", "lab agent"]
        + ["--db", collector.db_url],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    token = enrol.stdout.splitlines()[0].strip()
    argv = [sys.executable, "-m", "tests.lab.upload", collector.url, token]
    argv += [str(records), str(tmp_path / "agent" / "key.pem")]
    done = lab.run("agent", argv, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    upload = json.loads(done.stdout)
    assert (upload["stored"], upload["dups"]) == (len(measured), 0)

    matrix = fetch_json(lab, f"{collector.url}/api/v1/blocking")
    # Throttle rows by their throttle test: each a record of its own, "throttled".
    assert not blocking_mismatches(lab.table, matrix, measured, runs=1)

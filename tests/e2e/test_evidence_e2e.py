"""Evidence bundles on the lab's data: what an agent measured behind the censors and
uploaded is bundled by ``netsonde-collector bundle``, verifies with the standalone verifier
alone in an empty directory against the key the collector serves, and a one-byte change
anywhere in it fails."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import collector.evidence.netsonde_verify as standalone
from tests.lab import engine
from tests.lab.agent import enrolment_token
from tests.lab.collector import LabCollector
from tests.lab.lab import REPO_ROOT, Lab

pytestmark = pytest.mark.lab

DAY = 86_400_000


def test_a_bundle_of_the_labs_data_verifies_alone(
    lab: Lab, collector: LabCollector, tmp_path: Path
) -> None:
    records = tmp_path / "records.msgpack"
    measured = engine.measure_table(lab, collector_url=collector.url, msgpack_out=records)
    token = enrolment_token(collector.db_url)
    argv = [sys.executable, "-m", "tests.lab.upload", collector.url, token]
    done = lab.run("agent", [*argv, str(records), str(tmp_path / "key.pem")], timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    bundle = tmp_path / "evidence.tar"
    now = int(time.time() * 1000)
    made = subprocess.run(
        [sys.executable, "-m", "collector.cli", "bundle", "--db", collector.db_url,
         "--since", str(now - DAY), "--until", str(now + DAY), "--out", str(bundle)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = collector.get_json("/api/v1/collector-key")["public_key"]
    assert key in made.stdout  # the CLI signs with the key the running collector serves

    expert = tmp_path / "expert"
    expert.mkdir()
    shutil.copy(standalone.__file__, expert / "netsonde_verify.py")

    def verify(data: bytes) -> subprocess.CompletedProcess[str]:
        (expert / "evidence.tar").write_bytes(data)
        return subprocess.run(
            [sys.executable, "-I", "netsonde_verify.py", "evidence.tar", "--collector-key", key],
            cwd=expert, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip

    data = bundle.read_bytes()
    checked = verify(data)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"OK: {len(measured)} measurement(s) from 1 agent(s)" in checked.stdout
    for position in (0, 600, len(data) // 3, len(data) // 2, len(data) - 1100, len(data) - 1):
        changed = bytearray(data)
        changed[position] ^= 0x01
        failed = verify(bytes(changed))
        assert failed.returncode == 1, position
        assert "FAILED" in failed.stdout
    summary = json.loads(
        subprocess.run(
            ["tar", "-xOf", str(bundle), "netsonde-evidence/summary.json"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    )
    assert summary["measurements"] == len(measured)
    assert summary["not_individually_verifiable"] == 0

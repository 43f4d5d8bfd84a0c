"""Lab fixtures: the real collector, serving controls from the lab's net namespace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import addresses as plan
from tests.lab.lab import REPO_ROOT, Lab

PORT = 8080
COLLECTOR_URL = f"http://{plan.COLLECTOR}:{PORT}"
START_TIMEOUT = 15.0


class Collector:
    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def collector(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    log = tmp_path_factory.mktemp("collector") / "collector.log"
    argv = [
        "ip",
        "netns",
        "exec",
        lab.topo.ns("net"),
        sys.executable,
        "-m",
        "collector.cli",
        "serve",
        "--listen",
        f"{plan.COLLECTOR}:{PORT}",
        "--ca-file",
        str(lab.ca_file),
        "--resolver",
        plan.PUBLIC_RESOLVER,
        "--timeout",
        "2",
        "--db",
        f"sqlite:///{log.parent}/netsonde.db",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    running = Collector(process, log)
    try:
        _wait_listening(lab, running)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_listening(lab: Lab, collector: Collector) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while f"listening on {COLLECTOR_URL}" not in collector.log_text():
        if collector.process.poll() is not None:
            pytest.fail(f"the collector exited early:\n{collector.log_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"the collector did not listen within {START_TIMEOUT}s")
        time.sleep(0.05)

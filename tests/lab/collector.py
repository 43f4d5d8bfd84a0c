"""Censor lab: the real netsonde collector, serving controls from the lab's net namespace.

Shared by the end-to-end tests, the demo and the benchmarks, so all of them run
the collector the same way: ``python -m collector.cli serve`` at the lab's
collector address, with an embedded SQLite database and the lab CA.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from tests.lab import addresses as plan
from tests.lab.lab import REPO_ROOT, Lab
from tests.lab.shell import LabError, in_ns

PORT = 8080
COLLECTOR_URL = f"http://{plan.COLLECTOR}:{PORT}"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


class LabCollector:
    def __init__(self, lab: Lab, directory: Path) -> None:
        self.lab = lab
        self.directory = directory
        self.log = directory / "collector.log"
        self.db_url = f"sqlite:///{directory / 'netsonde.db'}"
        self.url = COLLECTOR_URL
        self.process: subprocess.Popen[bytes] | None = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self) -> LabCollector:
        argv = [sys.executable, "-m", "collector.cli", "serve"]
        argv += ["--listen", f"{plan.COLLECTOR}:{PORT}", "--db", self.db_url]
        argv += ["--ca-file", str(self.lab.ca_file), "--resolver", plan.PUBLIC_RESOLVER]
        argv += ["--timeout", "2"]
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                in_ns(self.lab.topo.ns("net"), argv),
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while f"listening on {self.url}" not in self.log_text():
            if self.process.poll() is not None:
                raise LabError(f"the collector exited early:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise LabError(f"the collector did not listen within {START_TIMEOUT:.0f}s")
            time.sleep(0.05)
        return self

    def stop(self) -> int | None:
        """SIGTERM, as systemd would; a collector that ignores it is killed."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> LabCollector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

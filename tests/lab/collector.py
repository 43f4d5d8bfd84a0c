"""Censor lab: the real netsonde collector, serving controls from the lab's net namespace.

Shared by the end-to-end tests, the demo and the benchmarks, so all of them run
the collector the same way: ``python -m collector.cli serve`` at the lab's
collector address, with an embedded SQLite database and the lab CA.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.lab import addresses as plan
from tests.lab.lab import REPO_ROOT, Lab
from tests.lab.scenarios import ScenarioTable
from tests.lab.shell import LabError, in_ns

PORT = 8080
COLLECTOR_URL = f"http://{plan.COLLECTOR}:{PORT}"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
# Verdicts that are not a blocking technique: the matrix has no dominant technique for them.
NOT_BLOCKING = frozenset({"ok", "down", "offline", "inconclusive"})


class LabCollector:
    def __init__(self, lab: Lab, directory: Path, extra_args: Sequence[str] = ()) -> None:
        self.lab = lab
        self.directory = directory
        self.extra_args = list(extra_args)  # more `serve` options, e.g. --testlist FILE
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
        argv += ["--timeout", "2", *self.extra_args]
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

    def get_json(self, path: str, timeout: float = 30.0) -> Any:
        """GET ``path`` (with its query) from the net namespace: it works with the agent's
        uplink cut, and no censor sees it."""
        script = (
            "import sys, urllib.request as u; "
            "print(u.urlopen(sys.argv[1], timeout=10).read().decode())"
        )
        done = self.lab.run("net", [sys.executable, "-c", script, self.url + path], timeout=timeout)
        if done.returncode != 0:
            raise LabError(f"GET {path} failed: {done.stderr.strip()[-500:]}")
        return json.loads(done.stdout)

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


def blocking_mismatches(
    table: ScenarioTable,
    matrix: Any,
    domains: Iterable[str],
    *,
    runs: int | None = None,
    at_least: int = 1,
) -> list[str]:
    """How ``/api/v1/blocking`` differs from the table for ``domains``: each must be there,
    with only its expected verdict (``runs`` times if given, else ``at_least`` times), and
    the expected verdict dominant unless it is not a blocking technique. Empty if it agrees."""
    rows = {row["domain"]: row for row in matrix["rows"]}
    expected = {row.domain: row.expected for row in table.rows}
    wrong = []
    for domain in domains:
        got, want = rows.get(domain), expected[domain]
        if got is None:
            wrong.append(f"{domain}: missing from /blocking")
            continue
        counts = got["counts"]
        count_ok = set(counts) == {want} and (
            counts[want] == runs if runs is not None else counts[want] >= at_least
        )
        if not count_ok or got["dominant"] != (None if want in NOT_BLOCKING else want):
            wrong.append(f"{domain}: expected {want}, got {got}")
    return wrong

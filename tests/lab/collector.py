"""Censor lab: the real netsonde collector, serving controls from the lab's net namespace.

Shared by the end-to-end tests, the demo and the benchmarks, so all of them run
the collector the same way: ``python -m collector.cli serve`` at the lab's
collector address, with an embedded SQLite database and the lab CA, allowed to measure
the lab's internet (the documentation ranges, which a real collector refuses), serving the
shared OONI fingerprints to the agents. Once it
listens it enrols the identity ``netsonde-agent probe`` signs its control requests with
(``tests.lab.engine.probe_state_dir``): the control serves enrolled agents only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.lab import addresses as plan
from tests.lab.agent import enrolment_token
from tests.lab.engine import fingerprint_paths, probe_state_dir
from tests.lab.lab import REPO_ROOT, Lab
from tests.lab.scenarios import ScenarioTable
from tests.lab.shell import LabError, in_ns

PORT = 8080
COLLECTOR_URL = f"http://{plan.COLLECTOR}:{PORT}"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
# The lab's "public internet", which the control may measure only when told to.
INTERNET = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
# One probe identity measures whole tables at --concurrency 32 (benchmarks/bench_probe.py);
# the per-agent limit itself is tested in tests/security.
CONTROL_LIMITS = ("--control-rate", "1000", "--control-burst", "1000")
FAREND_PORTS = ("--farend-tls-port", "443", "--farend-http-port", "80", "--farend-udp-port", "443")
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
        self._operator_token: str | None = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self) -> LabCollector:
        argv = [sys.executable, "-m", "collector.cli", "serve"]
        argv += ["--listen", f"{plan.COLLECTOR}:{PORT}", "--db", self.db_url]
        argv += ["--ca-file", str(self.lab.ca_file), "--resolver", plan.PUBLIC_RESOLVER]
        argv += ["--timeout", "2", *CONTROL_LIMITS]
        # The far end on the ports a censor watches, as README.md suggests for real ones.
        argv += [*FAREND_PORTS, "--farend-dir", str(self.directory)]
        for network in INTERNET:
            argv += ["--allow-network", network]
        for path in fingerprint_paths():  # what the lab's daemons measure with
            argv += ["--fingerprints", str(path)]
        argv += self.extra_args
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
        try:
            self.enroll_probe()
        except (LabError, subprocess.SubprocessError):
            self.stop()
            raise
        return self

    def enroll_probe(self) -> Path:
        """A new probe identity for this collector (whose database knows only its own
        agents), enrolled from the net namespace, which reaches it with the uplink cut."""
        state_dir = probe_state_dir(self.lab)
        shutil.rmtree(state_dir, ignore_errors=True)
        token = self.directory / "probe-token"
        token.write_text(enrolment_token(self.db_url))
        argv = [sys.executable, "-m", "agent.cli", "enroll", "--collector", self.url]
        argv += ["--token-file", str(token), "--state-dir", str(state_dir)]
        done = self.lab.run("net", argv, timeout=60)
        if done.returncode != 0:
            raise LabError(f"enrolling the probe failed: {done.stderr.strip()[-500:]}")
        return state_dir

    def operator_token(self) -> str:
        """A token for what only the operator may read (agent ids on measurements, outages
        by agent, /agents, /metrics), made once by `operator-token create`."""
        if self._operator_token is None:
            argv = [sys.executable, "-m", "collector.cli", "operator-token", "create"]
            argv += ["--name", "lab", "--db", self.db_url]
            done = subprocess.run(
                argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
            )
            if done.returncode != 0:
                raise LabError(f"operator-token create failed: {done.stderr.strip()[-500:]}")
            self._operator_token = done.stdout.split()[0]
        return self._operator_token

    def get_json(self, path: str, timeout: float = 30.0) -> Any:
        """GET ``path`` (with its query) from the net namespace, as the operator: it works with
        the agent's uplink cut, and no censor sees it."""
        script = (
            "import sys, urllib.request as u; "
            "auth = {'Authorization': 'Bearer ' + sys.argv[2]} if sys.argv[2] else {}; "
            "request = u.Request(sys.argv[1], headers=auth); "
            "print(u.urlopen(request, timeout=10).read().decode())"
        )
        argv = [sys.executable, "-c", script, self.url + path, self.operator_token()]
        done = self.lab.run("net", argv, timeout=timeout)
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

"""Censor lab: the real agent daemon, ``netsonde-agent run``, in the lab's agent namespace.

Writes the daemon's configuration for the lab (its CA, public resolver, benign name and the
collector, whose OONI fingerprints it measures with, as a Raspberry Pi without files of its
own would), a Citizen Lab CSV of the URLs to measure, enrols the agent with a token from
the collector's database, and starts, kills and stops the daemon as a process of its own,
as systemd would. Shared by the end-to-end test and the benchmark.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.model.addresses import TEST_NETWORKS
from tests.lab import addresses as plan
from tests.lab.lab import REPO_ROOT, Lab
from tests.lab.shell import LabError, in_ns

READY_TIMEOUT = 20.0


def write_test_list(path: Path, urls: Sequence[str]) -> Path:
    lines = ["url,category_code,category_description,date_added,source,notes"]
    lines += [f"{url},NEWS,News Media,2024-01-01,netsonde-lab," for url in urls]
    path.write_text("\n".join(lines) + "\n")
    return path


def enrolment_token(db_url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "collector.cli", "enroll", "--name", "lab agent", "--db", db_url],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.splitlines()[0].strip()


class LabAgent:
    """One agent: its directory holds agent.toml, testlist.csv, the state and the log."""

    def __init__(
        self,
        lab: Lab,
        directory: Path,
        *,
        collector_url: str,
        urls: Sequence[str],
        schedule: dict[str, str] | None = None,
        probe: dict[str, Any] | None = None,
        testlist: dict[str, Any] | None = None,
        throttle: dict[str, Any] | None = None,
    ) -> None:
        self.lab, self.directory = lab, directory
        self.collector_url = collector_url
        self.config_path = directory / "agent.toml"
        self.state_dir = directory / "state"
        self.log = directory / "agent.log"
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        write_test_list(directory / "testlist.csv", urls)
        sched = {"interval": "6s", "jitter": "0%", "connectivity_check": "2s", "upload": "1s"}
        sched |= schedule or {}
        settings: dict[str, Any] = {
            "timeout": "2s",
            "dns_timeout": "2s",
            "concurrency": 16,
            "resolvers": [plan.PUBLIC_RESOLVER],
            "benign_sni": lab.table.benign_domain,
        }
        settings |= probe or {}
        lists: dict[str, Any] = {"files": ["testlist.csv"], "from_collector": False}
        lists |= testlist or {}
        if lists["from_collector"]:
            # The lab's internet is the documentation ranges, which an agent refuses to enter
            # on the collector's say-so unless its operator allows them.
            lists.setdefault("allow_networks", [str(net) for net in TEST_NETWORKS])
        self.config_path.write_text(
            f'state_dir = "state"\nca_file = "{lab.ca_file}"\n'
            f'[collector]\nurls = ["{collector_url}"]\n'
            f"[testlist]\n{_toml(lists)}[schedule]\n{_toml(sched)}[probe]\n{_toml(settings)}"
            # The daemon's throttle job (agent.daemon.throttle): off unless a test wants it.
            f"[throttle]\n{_toml(throttle or {'enabled': False})}"
        )

    def enroll(self, db_url: str) -> str:
        """Enrols from the agent namespace, as a volunteer would, the token in a file of its
        own (never on a command line); returns the agent id."""
        token = self.directory / "enrolment.token"
        token.touch(mode=0o600)
        token.write_text(enrolment_token(db_url) + "\n")
        argv = [sys.executable, "-m", "agent.cli", "enroll", "--config", str(self.config_path)]
        done = self.lab.run("agent", [*argv, "--token-file", str(token)], timeout=60)
        if done.returncode != 0:
            raise LabError(f"netsonde-agent enroll failed: {done.stderr}")
        return self.status()["agent_id"]  # type: ignore[no-any-return]

    def start(self) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "agent.cli", "run", "--config", str(self.config_path)]
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
        with self.log.open("ab") as out:
            # `ip netns exec` execs the command: the pid is the daemon's own, for signals.
            self.process = subprocess.Popen(
                in_ns(self.lab.topo.ns("agent"), argv),
                cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        return self.process

    def kill(self) -> None:
        """kill -9: no chance to finish anything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 10.0) -> tuple[int | None, float]:
        """SIGTERM; the exit status (None if it did not exit in time, then it is killed)
        and the seconds it took."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
            self.process.kill()
            self.process.wait()
        return code, time.monotonic() - started

    def status(self) -> dict[str, Any]:
        """``netsonde-agent status --json``, read from the state directory."""
        from agent.cli.daemon import status_data
        from agent.daemon.config import load_config

        return status_data(load_config(self.config_path), self.state_dir)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _toml(values: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "".join(f"{k} = {value(v)}\n" for k, v in values.items())

"""Test support: a real ``netsonde-collector serve`` process on loopback, for the tests and
benchmarks that need the service as users run it. Its output goes to a file: a pipe nobody
drains could block it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests import REPO

STARTUP_S = 60.0


def collector_cli(*args: str) -> list[str]:
    """``netsonde-collector ARGS``: python -m runs the same main() as the installed script."""
    return [sys.executable, "-m", "collector.cli", *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The far end ``serve`` runs by default listens on fixed ports, which two collectors of one
# test (or two test runs) cannot share: any free ones, and its files beside the log (not in
# the working directory, the checkout, for a PostgreSQL store), unless a test chooses.
FAREND_ANY_PORT = ("--farend-tls-port", "0", "--farend-http-port", "0", "--farend-udp-port", "0")


class CollectorProcess:
    """One ``serve`` on a free loopback port, with the store at ``db`` and ``options``."""

    def __init__(self, db: str, log: Path, *options: str) -> None:
        if not any(option.startswith(("--farend", "--no-farend")) for option in options):
            options = (*FAREND_ANY_PORT, "--farend-dir", str(log.parent), *options)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        # Beside the log, not in the user's state: one key for the test's collectors, which
        # may share a database.
        key = ("--key-file", str(log.with_name("collector-key.pem")))
        with log.open("w") as out:
            self.process = subprocess.Popen(
                collector_cli(
                    "serve", "--listen", f"127.0.0.1:{self.port}", "--db", db, *key, *options
                ),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_listening(self) -> None:
        """Returns once it serves; RuntimeError, with its log, if it exits or takes too long."""
        deadline = time.monotonic() + STARTUP_S
        while "listening on" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"collector on {self.port} did not start:\n{self.log.read_text()}"
                )
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

"""Helpers for the deploy tests: running deploy/install-*.sh, and reading what they left.

The fixtures that install into a temporary root are in tests/deploy/conftest.py.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import REPO

DEPLOY = REPO / "deploy"
UNITS = REPO / "systemd"
AGENT_UNIT = "netsonde-agent.service"
COLLECTOR_UNIT = "netsonde-collector.service"
VENV = "opt/netsonde/venv"
AGENT_USER = "netsonde"
COLLECTOR_USER = "netsonde-collector"
INSTALL_TIMEOUT = 600.0
# What the scripts read from the environment; the tests set them explicitly or not at all.
SCRIPT_ENV = (
    "NETSONDE_ROOT", "NETSONDE_PACKAGE", "NETSONDE_COLLECTOR", "NETSONDE_TOKEN",
    "NETSONDE_LISTEN", "NETSONDE_POSTGRES", "NETSONDE_OS_RELEASE", "NETSONDE_ARCH", "PYTHON",
)  # fmt: skip


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "the install scripts need root (system users, file owners); run as root"
    missing = [
        t for t in ("systemd-analyze", "systemctl", "useradd", "runuser") if not shutil.which(t)
    ]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install systemd passwd util-linux)"
    if subprocess.run(["/usr/bin/python3", "-c", "import ensurepip"], check=False).returncode:
        return "/usr/bin/python3 has no venv support (apt-get install python3-venv)"
    return None


def script_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    return env | extra


def run_script(
    name: str, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY / name), *args],
        env=env if env is not None else script_env(),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
        cwd="/",
    )


class ArgvWatch:
    """Every command line on the machine holding ``secret``, scanned from /proc every
    :attr:`every` seconds while the ``with`` block runs: far shorter than the half second a
    Python command (``netsonde-agent enroll``) lives at the least."""

    every = 0.02

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.found: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            for path in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    argv = path.read_bytes()
                except OSError:
                    continue  # gone already
                if self.secret in argv:
                    self.found.append(argv.replace(b"\0", b" ").decode(errors="replace"))

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"exit {result.returncode}:\n{output}"
    return output


def owner(path: Path) -> tuple[int, str, str]:
    """Mode bits, user and group of ``path`` (not following a symlink)."""
    st = path.lstat()
    return stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name, _group(st.st_gid)


def _group(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes | str | None]]:
    """Every path under ``root`` but the virtualenv (reinstalled on purpose): mode, owner,
    group and content (file bytes, link target)."""
    result: dict[str, tuple[int, int, int, bytes | str | None]] = {}
    venv = root / VENV
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == venv.parent:
            dirnames[:] = [d for d in dirnames if here / d != venv]
        for name in dirnames + filenames:
            path = here / name
            st = path.lstat()
            content: bytes | str | None = None
            if stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            elif stat.S_ISREG(st.st_mode) and not name.startswith("netsonde.db"):
                # The collector's database is left out: the server keeps running.
                content = path.read_bytes()
            key = str(path.relative_to(root))
            result[key] = (st.st_mode, st.st_uid, st.st_gid, content)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Installed:
    root: Path
    collector_output: str
    agent_output: str
    collector_url: str
    collector_db: str
    token_argv: list[str]  # command lines that held the token during the agent's install


def as_user(user: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", user, "--", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the collector exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/api/v1/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the collector did not answer on {url}:\n{log.read_text()}")


def verify_units(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *units],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

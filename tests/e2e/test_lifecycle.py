"""The lab's command line: up, status, exec, shutdown, down, and cleanup after a crash."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_lab
from tests.lab import addresses as plan
from tests.lab.lab import CREATION_GRACE, REPO_ROOT, read_state, remove_holder_logs
from tests.lab.topology import NETNS_ETC, list_lab_namespaces

pytestmark = pytest.mark.lab

SMALL_TABLE = """
benign_domain = "example.com"
[[scenario]]
domain = "example.com"
technique = "clean"
hop = "none"
expected = "ok"
[[scenario]]
domain = "x.com"
technique = "sni-reset"
hop = "border"
expected = "tls.reset"
"""


def lab_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.lab", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=check,
    )


@pytest.fixture
def small_lab(tmp_path: Path) -> str:
    require_lab()
    table = tmp_path / "scenarios.toml"
    table.write_text(SMALL_TABLE)
    prefix = f"nsl{secrets.token_hex(3)}"
    lab_cli("up", "--scenarios", str(table), "--prefix", prefix)
    return prefix


def _processes_in(namespaces: list[str]) -> list[str]:
    pids = []
    for name in namespaces:
        done = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
        pids += done.stdout.split()
    return pids


def test_up_status_exec_shutdown_down(small_lab: str) -> None:
    prefix = small_lab
    status = json.loads(lab_cli("status", "--prefix", prefix, "--json").stdout)
    assert status["status"] == "ready"
    assert len(status["namespaces_present"]) == len(plan.ROLES)
    assert all(status["services"].values()), status["services"]
    routes = lab_cli("exec", "--prefix", prefix, "agent", "--", "ip", "-4", "-o", "addr").stdout
    assert "100.64.1.2/30" in routes
    lab_cli("shutdown", "--prefix", prefix, "on")
    assert json.loads(lab_cli("status", "--prefix", prefix, "--json").stdout)["shutdown"] is True
    lab_cli("shutdown", "--prefix", prefix, "off")
    assert json.loads(lab_cli("status", "--prefix", prefix, "--json").stdout)["shutdown"] is False
    lab_cli("down", "--prefix", prefix)
    assert prefix not in list_lab_namespaces()
    assert not (NETNS_ETC / f"{prefix}-agent").exists()
    assert read_state(prefix) is None


def test_crashed_lab_is_cleaned_up(small_lab: str) -> None:
    prefix = small_lab
    state = read_state(prefix)
    assert state is not None
    namespaces = list_lab_namespaces()[prefix]
    os.kill(int(state["owner_pid"]), signal.SIGKILL)
    time.sleep(0.2)
    # A crash leaves namespaces and daemons behind ...
    assert sorted(list_lab_namespaces()[prefix]) == sorted(namespaces)
    assert _processes_in(namespaces)
    # ... and the next run (or `cleanup`) removes them.
    out = lab_cli("cleanup").stdout
    assert prefix in out
    assert prefix not in list_lab_namespaces()
    assert not _processes_in(namespaces)
    assert read_state(prefix) is None


def test_status_without_a_lab_says_how_to_start_one() -> None:
    require_lab()
    done = lab_cli("status", "--prefix", "nsl000000", check=False)
    assert done.returncode == 2
    assert "python -m tests.lab up" in " ".join(done.stdout.split())


def test_cleanup_removes_holder_logs_of_labs_that_are_gone(tmp_path: Path) -> None:
    old = time.time() - 2 * CREATION_GRACE
    gone, fresh, live = (tmp_path / f"nsl0000a{n}.holder.log" for n in (1, 2, 3))
    for log in (gone, fresh, live):
        log.write_text("lab nsl0000a0 ready\n")
    for log in (gone, live):
        os.utime(log, (old, old))
    (tmp_path / "nsl0000a3").mkdir()  # a lab that still has its state
    (tmp_path / "nsl0000a3" / "state.json").write_text(json.dumps({"prefix": "nsl0000a3"}))
    remove_holder_logs(tmp_path)
    assert (gone.exists(), fresh.exists(), live.exists()) == (False, True, True)

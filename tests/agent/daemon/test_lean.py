"""Agent daemon, lean idle mode, end to end on loopback: ``netsonde-agent run`` as a process
of its own against the real collector app; it measures, execs into lean mode once nothing is
due, keeps sending heartbeats, and execs back into full mode when the next run is due.

Nothing leaves 127.0.0.0/8 (``tests.agent.daemon.loopback``).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import __version__
from agent.daemon.config import load_config
from agent.daemon.enrollment import enroll, read_state
from agent.daemon.spool import Spool
from agent.daemon.state import LEAN_MIN_IDLE, META_MODE
from collector.storage import AgentStatus
from collector.web.keys import STORAGE
from tests import REPO
from tests.agent.daemon.loopback import (
    collector,
    daemon_argv,
    loopback_resolver,
    started,
    stop_daemon,
    token,
    until,
    web_site,
    write_config,
)

# What lean mode exists to leave out (docs/design/005-lean-idle.md).
HEAVY = ("aiohttp", "dns", "rich", "scapy", "agent.site", "agent.probes", "agent.wire.record")
INTERVAL = LEAN_MIN_IDLE + 15  # long enough to go lean after a run, short enough to wait for


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_the_lean_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, agent.cli.main, agent.cli.daemon, agent.daemon.lean\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert _heavy(done.stdout.split()) == []
    assert "agent.daemon.lean" in done.stdout.split()


def _mode(state_dir: Path) -> object:
    with Spool.open(state_dir / "spool.db", max_bytes=10**8) as spool:
        return spool.get_meta(META_MODE)


def _lean_imports(text: str) -> list[str]:
    """What the lean process imported: -X importtime lines between the exec into lean mode
    and the exec back into full mode."""
    start = text.index("switching to lean mode (exec)")
    end = text.index("switching to full mode", start)
    return re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)", text[start:end], re.M)


@pytest.mark.asyncio
async def test_goes_lean_keeps_heartbeats_and_returns_to_full_to_measure(tmp_path: Path) -> None:
    async with (
        loopback_resolver(tmp_path) as resolv_conf,
        web_site() as port,
        collector(tmp_path, resolv_conf) as server,
    ):
        url = str(server.make_url("")).rstrip("/")
        path = write_config(tmp_path, url, port)
        path.write_text(path.read_text().replace('interval = "30s"', f'interval = "{INTERVAL}s"'))
        config = load_config(path)
        await enroll(url, token(server), config.state_dir)
        agent_id = read_state(config.state_dir).agent_id
        storage = server.app[STORAGE]

        def heartbeats() -> int:
            return len(storage.connectivity_checks(agent=agent_id, since_ms=0))

        log = tmp_path / "agent.log"
        # PYTHONPROFILEIMPORTTIME survives the execs, so the log shows what each mode imports.
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONPROFILEIMPORTTIME="1")
        with started(daemon_argv(resolv_conf, path), env, log) as process:
            pid = process.pid
            await until("the first run", lambda: storage.count_measurements() == 2, 30, log)
            await until("lean mode", lambda: _mode(config.state_dir) == "lean", 30, log)
            assert process.pid == pid
            assert process.poll() is None
            lean_at = time.monotonic()
            before = heartbeats()
            await until("heartbeats in lean mode", lambda: heartbeats() >= before + 3, 20, log)
            assert _mode(config.state_dir) == "lean"
            # Each heartbeat says the agent's version and its empty spool.
            (summary,) = storage.agent_summaries()
            assert summary.status == AgentStatus(__version__, 0, 0, 0)

            # The next run is due INTERVAL after the first: back to full mode, and measured.
            await until(
                "the second run",
                lambda: storage.count_measurements() == 4,
                INTERVAL + 30 - (time.monotonic() - lean_at),
                log,
            )
            text = log.read_text()
            assert "switching to lean mode" in text
            assert "switching to full mode" in text
            assert process.poll() is None
            # The second run went lean again: SIGTERM in lean mode.
            await until("lean mode again", lambda: _mode(config.state_dir) == "lean", 30, log)
            code, took = await asyncio.to_thread(stop_daemon, process)
            assert code == 0
            assert took < 10
        imported = _lean_imports(log.read_text())
        assert "agent.daemon.lean" in imported
        assert _heavy(imported) == []
        with Spool.open(config.state_dir / "spool.db", max_bytes=10**8) as spool:
            assert spool.totals()["acked"] == 4


@pytest.mark.asyncio
async def test_sigterm_in_full_mode(tmp_path: Path) -> None:
    async with (
        loopback_resolver(tmp_path) as resolv_conf,
        web_site() as port,
        collector(tmp_path, resolv_conf) as server,
    ):
        url = str(server.make_url("")).rstrip("/")
        config = load_config(write_config(tmp_path, url, port))
        await enroll(url, token(server), config.state_dir)
        log = tmp_path / "agent.log"
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with started(daemon_argv(resolv_conf, Path(config.source)), env, log) as process:
            storage = server.app[STORAGE]
            await until("the first run", lambda: storage.count_measurements() == 2, 30, log)
            assert _mode(config.state_dir) == "full"
            code, took = await asyncio.to_thread(stop_daemon, process)
            assert code == 0
            assert took < 10

"""Censor lab: the shared life cycle of every lab daemon.

Each daemon (web servers, resolvers, censors) runs as its own process inside a
namespace, started as ``python -m tests.lab.<module> CONFIG.json``. The lab
orchestrator waits for the line ``READY`` on the daemon's stdout (a log file),
and stops it with SIGTERM. Keeping that contract in one place lets the
orchestrator treat every daemon alike.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

READY_LINE = "READY"

Cleanup = Callable[[], Awaitable[None]]
Starter = Callable[[dict[str, Any]], Awaitable[Cleanup]]


def load_config(argv: list[str] | None = None) -> dict[str, Any]:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m tests.lab.<service> CONFIG.json")
    config: dict[str, Any] = json.loads(Path(args[0]).read_text())
    return config


def announce_ready() -> None:
    print(READY_LINE, flush=True)


def run_service(start: Starter) -> None:
    """Start a daemon from its config, announce readiness, run until SIGTERM."""
    config = load_config()
    asyncio.run(_serve(start, config))


async def _serve(start: Starter, config: dict[str, Any]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    cleanup = await start(config)
    announce_ready()
    await stop.wait()
    await cleanup()

"""Censor lab: web servers that are broken for everyone, with no censor involved.

Runs in the "net" namespace as ``python -m tests.lab.broken_server CONFIG.json``::

    {"sites": [{"ip": "192.0.2.40", "mode": "reset"}, {"ip": "192.0.2.41", "mode": "silent"}],
     "ports": [80, 443]}

A ``reset`` site accepts the connection, reads the client's first bytes (a ClientHello or
a request) and aborts with a RST, as an overloaded or misconfigured server does; a
``silent`` one accepts and never says a word until the client gives up. The agent and
the control see the same failure, which is what makes such a site ``down``, not censored.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

from tests.lab.service import Cleanup, run_service

MODES = ("reset", "silent")
READ_TIMEOUT = 10.0
# A silent connection is held at most this long, so a client that never leaves cannot pin
# the daemon; longer than any lab client's timeout.
HOLD_SECONDS = 30.0


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a RST: SO_LINGER on, zero timeout."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class BrokenSites:
    """The connections of every broken site, so shutdown can abort the ones held open."""

    def __init__(self) -> None:
        self.writers: set[asyncio.StreamWriter] = set()

    def handler(self, mode: str) -> Any:
        if mode not in MODES:
            raise ValueError(f"unknown broken-server mode {mode!r} (one of {', '.join(MODES)})")

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.add(writer)
            try:
                await (_reset if mode == "reset" else _silent)(reader, writer)
            finally:
                self.writers.discard(writer)

        return handle

    def abort_all(self) -> None:
        for writer in list(self.writers):
            writer.transport.abort()


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(READ_TIMEOUT):
            await reader.read(1)
    _abort(writer)


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(HOLD_SECONDS):
            while await reader.read(4096):
                pass
    writer.transport.abort()


async def start(config: dict[str, Any]) -> Cleanup:
    ports = [int(p) for p in config.get("ports", [80, 443])]
    sites = BrokenSites()
    servers = []
    for site in config.get("sites", []):
        for port in ports:
            server = await asyncio.start_server(
                sites.handler(str(site["mode"])), str(site["ip"]), port, reuse_address=True
            )
            servers.append(server)

    async def cleanup() -> None:
        for server in servers:
            server.close()
        # Newer Pythons wait for open connections in wait_closed(): end the held ones first.
        sites.abort_all()
        for server in servers:
            await server.wait_closed()

    return cleanup


if __name__ == "__main__":
    run_service(start)

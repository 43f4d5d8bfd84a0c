"""Agent daemon tests' loopback world: a DNS server (``site.test`` -> 127.0.0.1), a web site,
the real collector app on SQLite, an agent configuration pointing at them, and enrolment
tokens; and ``netsonde-agent run`` as a process of its own that uses that DNS server.
Nothing leaves 127.0.0.0/8; the collector's control uses the same resolver.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, cast

import dns.message
import dns.rcode
import dns.rrset
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.cli.daemon import status_data
from agent.daemon.config import AgentConfig
from agent.daemon.full import run_daemon
from agent.model.measurement import Target
from agent.site import ProbeConfig, measure_vantage
from agent.wire.record import encode_vantage
from collector.config import Settings
from collector.web.app import create_app
from collector.web.keys import STORAGE
from tests import REPO

__all__ = [
    "collector",
    "daemon_argv",
    "daemon_until",
    "loopback_resolver",
    "started",
    "stop_daemon",
    "token",
    "until",
    "web_site",
    "write_config",
]

DNS_HOST = "127.53.0.1"  # its own loopback address, so port 53 is free whatever else runs
SITE = "site.test."


class _Resolver(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not isinstance: on 3.11 the selector loop's datagram transport does not subclass
        # asyncio.DatagramTransport, though it is one.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        question = query.question[0]
        if question.name.to_text().lower() == SITE and question.rdtype == 1:  # A
            reply.answer.append(dns.rrset.from_text(SITE, 60, "IN", "A", "127.0.0.1"))
        elif question.name.to_text().lower() != SITE:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(reply.to_wire(), addr)


@asynccontextmanager
async def loopback_resolver(tmp_path: Path) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await loop.create_datagram_endpoint(
            _Resolver, local_addr=(DNS_HOST, 53), family=socket.AF_INET
        )
    except PermissionError:
        pytest.skip("binding a DNS server on port 53 needs root (or CAP_NET_BIND_SERVICE)")
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text(f"nameserver {DNS_HOST}\n")
    try:
        yield str(resolv_conf)
    finally:
        transport.close()


@asynccontextmanager
async def web_site(hits: list[str] | None = None) -> AsyncIterator[int]:
    """A page at ``/``; the path of every request, 404s included, goes to ``hits``."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><title>hello</title>a perfectly ordinary page</html>")

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        if hits is not None:
            hits.append(request.path)
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(middlewares=[count])
    app.router.add_get("/", page)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        assert server.port is not None
        yield server.port
    finally:
        await server.close()


@asynccontextmanager
async def collector(
    tmp_path: Path,
    resolv_conf: str,
    testlist: Path | None = None,
    port: int | None = None,
    fingerprints: tuple[Path, ...] = (),
) -> AsyncIterator[TestServer]:
    """The collector app on loopback, on ``port`` if given (a collector back after an
    outage: the same database, the same URL), serving ``fingerprints``."""
    control_config = ProbeConfig(timeout=2.0, resolv_conf=resolv_conf)

    async def measure(target: Target, addresses: tuple[str, ...]) -> bytes:
        vantage = await measure_vantage(target, control_config, extra_addresses=addresses)
        return encode_vantage(vantage)

    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'collector.db'}",
        testlist=None if testlist is None else str(testlist),
        fingerprints=tuple(map(str, fingerprints)),
    )
    server = TestServer(create_app(settings, measure=measure), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def write_config(tmp_path: Path, collector_url: str, site_port: int) -> Path:
    (tmp_path / "list.csv").write_text(
        "url,category_code\n"
        f"http://site.test:{site_port}/,NEWS\n"
        f"http://site.test:{site_port}/other,NEWS\n"
    )
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""\
state_dir = "state"
[collector]
urls = ["{collector_url}"]
[testlist]
files = ["list.csv"]
from_collector = false
[schedule]
interval = "30s"
jitter = "0%"
connectivity_check = "1s"
upload = "1s"
[probe]
timeout = "2s"
dns_timeout = "1s"
"""
    )
    return path


def token(server: TestServer) -> str:
    storage = server.app[STORAGE]
    return storage.create_enroll_token("test", 3_600_000, int(time.time() * 1000))


def daemon_argv(resolv_conf: str, config: Path) -> list[str]:
    """``netsonde-agent run`` whose system resolver is the loopback one: in a mount namespace
    of its own with the test's resolv.conf over /etc/resolv.conf. unshare and sh exec, so the
    PID is the daemon's own."""
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    run = [sys.executable, "-m", "agent.cli", "run", "--config", str(config)]
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, resolv_conf, *run]


@contextmanager
def started(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The daemon, its output in ``log``; killed on the way out if still running."""
    with log.open("ab") as out:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=out)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def until(what: str, ok: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; log:\n{log.read_text()[-4000:]}")
        await asyncio.sleep(0.3)


def stop_daemon(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    """SIGTERM; the exit status and the seconds it took."""
    started_at = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(15)
    return code, time.monotonic() - started_at


async def daemon_until(
    config: AgentConfig, resolv_conf: str, ready: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """``run_daemon`` in this process until ``ready`` says yes to ``status --json``'s data;
    then stopped (within 10 s, or the test fails), and that data returned."""
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(config, stop=stop, resolv_conf=resolv_conf))
    deadline = time.monotonic() + timeout
    while not ready(status := status_data(config, config.state_dir)):
        assert not daemon.done(), daemon
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(daemon, 10)
    return status

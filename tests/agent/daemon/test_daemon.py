"""Agent daemon end to end on loopback: enrol with the real collector app (SQLite), run the
daemon against a local web server, and see the results reach the collector's database.

Nothing leaves 127.0.0.0/8: the daemon's system resolver is a tiny DNS server on a loopback
address (``site.test`` -> 127.0.0.1), and the collector's control uses the same one.
"""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import dns.message
import dns.rcode
import dns.rrset
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.cli.daemon import status_data, status_lines
from agent.daemon.config import load_config
from agent.daemon.enrollment import KEY_FILE, STATE_FILE, DaemonError, enroll, read_state
from agent.daemon.full import run_daemon
from agent.daemon.spool import Spool
from agent.daemon.testlist import TESTLIST_CACHE
from agent.model.measurement import Target
from agent.site import ProbeConfig, measure_vantage
from agent.wire.record import encode_vantage
from collector.config import Settings
from collector.web.app import create_app
from collector.web.keys import STORAGE
from tests import REPO

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
async def web_site() -> AsyncIterator[int]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><title>hello</title>a perfectly ordinary page</html>")

    app = web.Application()
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
    tmp_path: Path, resolv_conf: str, testlist: Path | None = None
) -> AsyncIterator[TestServer]:
    control_config = ProbeConfig(timeout=2.0, resolv_conf=resolv_conf)

    async def measure(target: Target, addresses: tuple[str, ...]) -> bytes:
        vantage = await measure_vantage(target, control_config, extra_addresses=addresses)
        return encode_vantage(vantage)

    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'collector.db'}",
        testlist=None if testlist is None else str(testlist),
    )
    server = TestServer(create_app(settings, measure=measure), host="127.0.0.1")
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


@pytest.mark.asyncio
async def test_enroll_run_upload_and_stop(tmp_path: Path) -> None:
    async with (
        loopback_resolver(tmp_path) as resolv_conf,
        web_site() as port,
        collector(tmp_path, resolv_conf) as server,
    ):
        url = str(server.make_url("")).rstrip("/")
        config = load_config(write_config(tmp_path, url, port))
        state = await enroll(url, token(server), config.state_dir)
        assert read_state(config.state_dir) == state
        for name in (KEY_FILE, STATE_FILE):
            assert stat.S_IMODE((config.state_dir / name).stat().st_mode) == 0o600
        with pytest.raises(DaemonError, match="already enrolled"):
            await enroll(url, token(server), config.state_dir)

        storage = server.app[STORAGE]
        stop = asyncio.Event()
        daemon = asyncio.create_task(run_daemon(config, stop=stop, resolv_conf=resolv_conf))
        deadline = time.monotonic() + 20

        def uploaded() -> bool:
            # Stored at the collector, and the daemon has seen the answer and noted it.
            return storage.count_measurements() == 2 and not any(
                line.startswith("last upload:   never")
                for line in status_lines(config, config.state_dir)
            )

        while not await asyncio.to_thread(uploaded) and time.monotonic() < deadline:
            assert not daemon.done(), daemon
            await asyncio.sleep(0.2)
        assert storage.count_measurements() == 2

        stop.set()
        started = time.monotonic()
        await asyncio.wait_for(daemon, 10)
        assert time.monotonic() - started < 10

        with Spool.open(config.state_dir / "spool.db", max_bytes=10**6) as spool:
            assert spool.depth() == (0, 0)
            assert spool.get_meta("connectivity") == "online"
            assert spool.totals() == {"spooled": 2, "acked": 2, "evicted": 0, "waiting": 0}
        lines = "\n".join(status_lines(config, config.state_dir))
        assert f"agent id:      {state.agent_id}" in lines
        assert f"collector:     {url}" in lines
        assert "spool:         0 records, 0 bytes waiting" in lines
        assert "last run:      never" not in lines
        assert "2 results, 0 failed" in lines
        assert "last upload:   never" not in lines
        assert "connectivity:  online" in lines
        assert "measurements:  2 made, 2 acknowledged by the collector" in lines
        assert "bandwidth:     " in lines
        assert "no daily budget" in lines
        assert "test list:     local files only" in lines
        data = status_data(config, config.state_dir)
        assert data["bandwidth"]["used"] > 2 * 700  # two HTTP round trips at least


@pytest.mark.asyncio
async def test_enroll_reports_a_refused_token_and_an_unreachable_collector(
    tmp_path: Path,
) -> None:
    async with collector(tmp_path, "/nonexistent") as server:
        url = str(server.make_url("")).rstrip("/")
        with pytest.raises(DaemonError, match=r"refused the enrolment: .*token"):
            await enroll(url, "not-a-token", tmp_path / "state")
        assert not (tmp_path / "state" / STATE_FILE).exists()
    # The port is closed now: nothing listens there any more.
    with pytest.raises(DaemonError, match="cannot reach the collector"):
        await enroll(url, "whatever", tmp_path / "state", timeout=5)


@pytest.mark.asyncio
async def test_stop_during_a_slow_run_returns_quickly(tmp_path: Path) -> None:
    gate = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await gate.wait()  # never set: the measuring run can only end by cancellation
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/", slow)
    site = TestServer(app, host="127.0.0.1")
    async with loopback_resolver(tmp_path) as resolv_conf, collector(tmp_path, resolv_conf) as srv:
        await site.start_server()
        try:
            url = str(srv.make_url("")).rstrip("/")
            assert site.port is not None
            path = write_config(tmp_path, url, site.port)
            path.write_text(path.read_text().replace('timeout = "2s"', 'timeout = "60s"'))
            config = load_config(path)
            await enroll(url, token(srv), config.state_dir)
            stop = asyncio.Event()
            daemon = asyncio.create_task(run_daemon(config, stop=stop, resolv_conf=resolv_conf))
            await asyncio.sleep(1.5)  # the run is now stuck on the slow site
            assert not daemon.done()
            stop.set()
            started = time.monotonic()
            await asyncio.wait_for(daemon, 10)
            assert time.monotonic() - started < 10
        finally:
            gate.set()
            await site.close()


def test_status_before_the_daemon_ran(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text("url\nhttp://site.test/\n")
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9", 80))
    lines = status_lines(config, config.state_dir)
    assert lines[0].startswith("agent id:      not enrolled")
    assert "spool:         not created yet" in lines[-1]
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "status", "--config", str(tmp_path / "agent.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == lines
    bad = subprocess.run(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(tmp_path / "missing.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().endswith("cannot read configuration: No such file or directory")


def _measured_urls(spool: Spool) -> list[str]:
    from agent.wire.record import decode_measurement

    return sorted(decode_measurement(r.record).url for r in spool.peek(1000))


@pytest.mark.asyncio
async def test_collector_test_list_is_fetched_merged_cached_and_kept(tmp_path: Path) -> None:
    """The collector's list joins the local file (each URL once), is cached in the state
    directory, and a restart that cannot reach the collector still measures it."""
    async with loopback_resolver(tmp_path) as resolv_conf, web_site() as port:
        served = tmp_path / "served.csv"
        served.write_text(
            "url,category_code\n"
            f"http://site.test:{port}/other,NEWS\n"  # also in the local file
            f"http://site.test:{port}/third,NEWS\n"
        )
        async with collector(tmp_path, resolv_conf, testlist=served) as server:
            url = str(server.make_url("")).rstrip("/")
            path = write_config(tmp_path, url, port)
            path.write_text(path.read_text().replace("from_collector = false", 'refresh = "1s"'))
            config = load_config(path)
            await enroll(url, token(server), config.state_dir)
            storage = server.app[STORAGE]
            stop = asyncio.Event()
            daemon = asyncio.create_task(run_daemon(config, stop=stop, resolv_conf=resolv_conf))
            deadline = time.monotonic() + 20
            while storage.count_measurements() < 3 and time.monotonic() < deadline:
                assert not daemon.done(), daemon
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.5)  # a refresh or two more: 304s, nothing changes
            stop.set()
            await asyncio.wait_for(daemon, 10)
            assert storage.count_measurements() == 3  # one run, three distinct URLs
        cache = json.loads((config.state_dir / TESTLIST_CACHE).read_text())
        assert cache["urls"] == [f"http://site.test:{port}/other", f"http://site.test:{port}/third"]
        assert cache["etag"]
        data = status_data(config, config.state_dir)
        assert data["meta"]["testlist_failure"] == ""
        assert data["totals"]["spooled"] == data["totals"]["acked"] == 3

        # The collector is gone now: the cached list is still measured, and the failure shown.
        stop = asyncio.Event()
        daemon = asyncio.create_task(run_daemon(config, stop=stop, resolv_conf=resolv_conf))
        deadline = time.monotonic() + 20
        while status_data(config, config.state_dir)["totals"]["spooled"] < 6:
            assert not daemon.done(), daemon
            assert time.monotonic() < deadline, status_data(config, config.state_dir)
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(daemon, 10)
    with Spool.open(config.state_dir / "spool.db", max_bytes=10**6) as spool:
        assert _measured_urls(spool) == [
            f"http://site.test:{port}/",
            f"http://site.test:{port}/other",
            f"http://site.test:{port}/third",
        ]
    lines = "\n".join(status_lines(config, config.state_dir))
    assert "test list:     collector list fetched" in lines
    assert "last attempt failed: " + url in lines


@pytest.mark.asyncio
async def test_daily_bandwidth_budget_stops_measuring_and_uploading_but_not_heartbeats(
    tmp_path: Path,
) -> None:
    async with (
        loopback_resolver(tmp_path) as resolv_conf,
        web_site() as port,
        collector(tmp_path, resolv_conf) as server,
    ):
        url = str(server.make_url("")).rstrip("/")
        path = write_config(tmp_path, url, port)
        # One target's traffic is well over 1 kB: the first target spends the budget, the
        # second is skipped, and its record is never uploaded.
        text = path.read_text().replace('timeout = "2s"', 'timeout = "2s"\nconcurrency = 1')
        path.write_text(text + '[limits]\ndaily_bandwidth = "1kB"\n')
        config = load_config(path)
        state = await enroll(url, token(server), config.state_dir)
        storage = server.app[STORAGE]
        stop = asyncio.Event()
        daemon = asyncio.create_task(run_daemon(config, stop=stop, resolv_conf=resolv_conf))
        deadline = time.monotonic() + 20
        while (
            not (spent := status_data(config, config.state_dir)).get("meta", {}).get("last_run_ms")
        ):
            assert not daemon.done(), daemon
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        spent_ms = int(time.time() * 1000)
        assert spent["bandwidth"]["used"] >= 1000

        # Over budget, the connectivity checks still reach the collector, in heartbeat-only
        # batches whose bytes are counted too: an agent keeping to its budget is not silent.
        def heartbeats_since_spent() -> list[int]:
            checks = storage.connectivity_checks(agent=state.agent_id, since_ms=spent_ms)
            return [c.ms for c in checks if c.ms > spent_ms]

        deadline = time.monotonic() + 10
        while not heartbeats_since_spent() or (
            status_data(config, config.state_dir)["bandwidth"]["used"]
            < spent["bandwidth"]["used"] + 700
        ):
            assert not daemon.done(), daemon
            assert time.monotonic() < deadline, status_data(config, config.state_dir)
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(daemon, 10)
        assert storage.count_measurements() == 0, status_data(config, config.state_dir)
    data = status_data(config, config.state_dir)
    uploaded = data["totals"].pop("uploaded_bytes")
    assert uploaded > 0
    assert data["totals"] == {
        "spooled": 1, "acked": 0, "evicted": 0, "waiting": 1, "refused": 0, "runs": 1,
    }  # fmt: skip
    assert data["spool"]["records"] == 1
    assert data["bandwidth"]["budget"] == 1000
    assert data["meta"]["last_run_skipped"] == "1 targets: daily bandwidth budget spent"
    lines = "\n".join(status_lines(config, config.state_dir))
    assert "spent: measuring and uploading results paused until 00:00 UTC" in lines
    assert "(heartbeats go on)" in lines
    assert "last attempt failed: paused: daily bandwidth budget spent" in lines

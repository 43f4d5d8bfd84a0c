"""Agent daemon end to end on loopback: enrol with the real collector app (SQLite), run the
daemon against a local web server, and see the results reach the collector's database.

Nothing leaves 127.0.0.0/8: the daemon's system resolver is a tiny DNS server on a loopback
address (``site.test`` -> 127.0.0.1), and the collector's control uses the same one
(``tests.agent.daemon.loopback``).
"""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.cli.daemon import status_data, status_lines
from agent.daemon.config import load_config
from agent.daemon.enrollment import KEY_FILE, STATE_FILE, DaemonError, enroll, read_state
from agent.daemon.full import run_daemon
from agent.daemon.spool import Spool
from agent.daemon.testlist import TESTLIST_CACHE
from collector.web.keys import STORAGE
from tests import REPO
from tests.agent.daemon.loopback import (
    collector,
    daemon_until,
    loopback_resolver,
    token,
    web_site,
    write_config,
)


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
        await daemon_until(config, resolv_conf, lambda s: s["totals"]["spooled"] >= 6, 20)
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
        "write_failures": 0, "checks_evicted": 0,
    }  # fmt: skip
    assert data["spool"]["records"] == 1
    assert data["bandwidth"]["budget"] == 1000
    assert data["meta"]["last_run_skipped"] == "1 targets: daily bandwidth budget spent"
    lines = "\n".join(status_lines(config, config.state_dir))
    assert "spent: measuring and uploading results paused until 00:00 UTC" in lines
    assert "(heartbeats go on)" in lines
    assert "last attempt failed: paused: daily bandwidth budget spent" in lines

"""Agent daemon on a full disk: ``netsonde-agent run`` as a process of its own, its state
directory on a small tmpfs, against the real collector app on loopback.

The disk is filled to the last byte while results wait for a collector that is down. The
daemon must keep running without a flood of tracebacks and stop measuring, survive a
restart on the full disk, drain its spool into the collector once it is back (deleting
what it acknowledged, the disk still full), and measure again once space returns, with the
lost writes counted. Needs root (the tmpfs, the DNS server on port 53, the mount namespace).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.cli.daemon import status_data
from agent.daemon.config import load_config
from agent.daemon.disk import MIN_FREE_BYTES, free_bytes
from agent.daemon.enrollment import enroll
from agent.daemon.spool import Spool, SpoolFull
from agent.daemon.state import next_batch_seq
from collector.web.keys import STORAGE
from tests import REPO
from tests.agent.daemon import loopback
from tests.agent.daemon.loopback import collector, until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

DISK = "16m"


@contextlib.contextmanager
def tmpfs(path: Path) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0700", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


def fill(directory: Path) -> Path:
    """A file taking every byte left, down to the last block."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):
            block = bytes(size)
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, block)
    finally:
        os.close(fd)
    assert free_bytes(directory) == 0
    return filler


def _status(config: Any) -> dict[str, Any]:
    return status_data(config, config.state_dir)


def _spooled(config: Any) -> int:
    spooled: int = _status(config).get("totals", {}).get("spooled", 0)  # no spool yet: 0
    return spooled


def test_the_spool_deletes_and_numbers_batches_on_a_full_disk(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk") as disk, Spool.open(disk / "spool.db", max_bytes=10**8) as spool:
        ids = [f"m{i}" for i in range(600)]
        for i in ids:
            spool.add(os.urandom(1500), i, 0)
        first = next_batch_seq(spool)
        spool.ack([])  # the log truncated, the reserve made, as after every upload
        fill(disk)
        with pytest.raises(SpoolFull):
            spool.add(b"x", "one-more", 0)
        # Numbers keep growing unstored: the collector refuses one not above the last.
        numbers = [next_batch_seq(spool) for _ in range(3) if time.sleep(0.002) is None]
        assert first < numbers[0] < numbers[1] < numbers[2]
        assert spool.ack(ids) == 600  # the reserve made room for it
        assert spool.depth() == (0, 0)
        assert (disk / "spool.db-wal").stat().st_size == 0  # truncated after the delete


@pytest.mark.asyncio
async def test_a_full_disk_pauses_measuring_but_not_uploading(tmp_path: Path) -> None:
    async with loopback.loopback_resolver(tmp_path) as resolv_conf, loopback.web_site() as port:
        with tmpfs(tmp_path / "disk") as disk:
            async with collector(tmp_path, resolv_conf) as server:
                url = str(server.make_url("")).rstrip("/")
                collector_port = server.port
                path = loopback.write_config(tmp_path, url, port)
                text = path.read_text().replace('state_dir = "state"', f'state_dir = "{disk}"')
                path.write_text(text.replace('interval = "30s"', 'interval = "4s"'))
                config = load_config(path)
                await enroll(url, loopback.token(server), config.state_dir)
                storage = server.app[STORAGE]
            await _run_through_a_full_disk(config, resolv_conf, tmp_path, collector_port, storage)


async def _run_through_a_full_disk(
    config: Any, resolv_conf: str, tmp_path: Path, port: int | None, storage: Any
) -> None:
    log = tmp_path / "agent.log"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = loopback.daemon_argv(resolv_conf, Path(config.source))
    with loopback.started(argv, env, log) as process:
        # The collector is down: results wait in the spool.
        await until("a run spooled", lambda: _spooled(config) >= 2, 30, log)
        filler = fill(config.state_dir)
        spooled = _status(config)["totals"]["spooled"]
        # Two intervals on a full disk: alive, quiet, measuring nothing.
        await asyncio.sleep(9)
        assert process.poll() is None, log.read_text()
        assert _status(config)["totals"]["spooled"] == spooled
        code, took = loopback.stop_daemon(process)
        assert (code, took < 10) == (0, True), log.read_text()

    # A start on the full disk: it waits, it does not exit.
    with loopback.started(argv, env, log) as process:
        await asyncio.sleep(5)
        assert process.poll() is None, log.read_text()
        async with collector(tmp_path, resolv_conf, port=port) as server:
            storage = server.app[STORAGE]
            await until(
                "the spool drained into the collector",
                lambda: _status(config)["spool"]["records"] == 0,
                30,
                log,
            )
            assert storage.count_measurements() == spooled
            assert free_bytes(config.state_dir) < MIN_FREE_BYTES  # still full: no measuring
            assert _status(config)["totals"]["spooled"] == spooled

            filler.unlink()
            await until(
                "measuring again, once space returned",
                lambda: _spooled(config) > spooled,
                20,
                log,
            )
            await until(
                "the new results uploaded",
                lambda: storage.count_measurements() > spooled,
                20,
                log,
            )
        code, took = loopback.stop_daemon(process)
        assert (code, took < 10) == (0, True), log.read_text()
    text = log.read_text()
    assert "Traceback" not in text
    # One message per process that found the disk full, not one per result or check.
    assert text.count("ERROR") <= 3, text
    assert "disk full" in text
    assert "disk has room again" in text
    assert _status(config)["totals"]["write_failures"] >= 1

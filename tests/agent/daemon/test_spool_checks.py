"""The spool's connectivity checks: durable across reopening, acknowledged by time, bounded
with the oldest evicted and counted, and a version-1 spool migrated in place."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from agent.cli.daemon import status_data, status_lines
from agent.daemon.spool import CHECK_EVICTIONS, Spool, SpoolError
from agent.daemon.state import SPOOL_FILE


def test_checks_survive_reopen_and_leave_only_when_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool.open(path, max_bytes=1 << 20) as spool:
        for ms, online in ((3000, False), (1000, True), (2000, True)):
            assert spool.add_check(ms, online) == 0
        spool.add_check(2000, False)  # the same time again: the later state stands
    with Spool.open(path, max_bytes=1 << 20) as spool:
        assert spool.peek_checks(10) == [(1000, True), (2000, False), (3000, False)]
        assert spool.peek_checks(2) == [(1000, True), (2000, False)]
        assert spool.ack_checks([1000, 3000, 999]) == 2
        assert spool.peek_checks(10) == [(2000, False)]
        assert spool.ack_checks(range(10_000)) == 1  # more than one statement's worth
        assert spool.peek_checks(10) == []


def test_beyond_max_checks_the_oldest_are_evicted_and_counted(tmp_path: Path) -> None:
    with Spool.open(tmp_path / "spool.db", max_bytes=1 << 20, max_checks=3) as spool:
        assert [spool.add_check(ms, True) for ms in range(1, 6)] == [0, 0, 0, 1, 1]
        assert spool.peek_checks(10) == [(3, True), (4, True), (5, True)]
        # The running total, in the meta table; the records' own total is not touched.
        assert (spool.get_meta(CHECK_EVICTIONS), spool.evictions()) == (2, 0)
        with pytest.raises(SpoolError, match="maintained by the spool"):
            spool.set_meta(CHECK_EVICTIONS, 0)
        with pytest.raises(SpoolError, match="Unix ms"):
            spool.add_check(-1, True)
        with pytest.raises(TypeError):
            spool.add_check(7, 1)  # type: ignore[arg-type]
    with pytest.raises(SpoolError, match="max_checks"):
        Spool.open(tmp_path / "other.db", max_bytes=1, max_checks=0)


def test_a_version_1_spool_gains_the_checks_table(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool.open(path, max_bytes=1 << 20) as spool:
        assert spool.add(b"record", "id-1", 1).inserted
    with sqlite3.connect(path) as conn:  # as an agent before checks left it
        conn.execute("DROP TABLE checks")
        conn.execute("UPDATE schema_version SET version = 1")
    with Spool.open(path, max_bytes=1 << 20) as spool:
        assert [r.id for r in spool.peek(10)] == ["id-1"]
        spool.add_check(5, False)
        assert spool.peek_checks(10) == [(5, False)]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]


@pytest.mark.asyncio
async def test_async_check_wrappers(tmp_path: Path) -> None:
    with Spool.open(tmp_path / "spool.db", max_bytes=1 << 20) as spool:
        await asyncio.gather(*(spool.add_check_async(ms, ms % 2 == 0) for ms in range(50)))
        peeked = await spool.peek_checks_async(100)
        assert [ms for ms, _ in peeked] == list(range(50))
        assert await spool.ack_checks_async(ms for ms, _ in peeked[:10]) == 10
        assert len(spool.peek_checks(100)) == 40


def test_status_shows_the_evicted_checks(tmp_path: Path) -> None:
    with Spool.open(tmp_path / SPOOL_FILE, max_bytes=1 << 20, max_checks=3) as spool:
        for ms in range(1, 6):
            spool.add_check(ms, True)
    assert status_data(None, tmp_path)["totals"]["checks_evicted"] == 2
    assert "evictions:     0 measurements, 2 connectivity checks" in status_lines(None, tmp_path)

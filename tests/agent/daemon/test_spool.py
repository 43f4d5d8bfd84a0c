"""The agent's spool: durable, bounded, oldest-first eviction counted, deleted only on ack."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from pathlib import Path

import msgpack  # type: ignore[import-untyped]
import pytest

from agent.daemon.spool import Spool, SpoolError, SpoolRecord, SpoolRecordTooLarge
from agent.model.measurement import SiteMeasurement
from agent.wire.record import decode_measurement, encode_measurement, measurement_from_obj
from tests.agent.observations import RECORDED as RECORDED_DIR

RECORDED = RECORDED_DIR / "with-control.msgpack"


def _load() -> list[SiteMeasurement]:
    with RECORDED.open("rb") as fh:
        return [measurement_from_obj(obj) for obj in msgpack.Unpacker(fh, raw=False)]


MEASUREMENTS = _load()
RECORDS = [(m.id, m.started_ms, encode_measurement(m)) for m in MEASUREMENTS]
TOTAL = sum(len(data) for _, _, data in RECORDS)


def _fill(spool: Spool, records: list[tuple[str, int, bytes]] = RECORDS) -> None:
    for id_, ms, data in records:
        assert spool.add(data, id_, ms).inserted


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "spool.db"


def _stored_bytes(path: Path) -> int:
    """The bytes really stored, counted from the rows, to check the spool's running total."""
    with sqlite3.connect(path) as conn:
        return int(
            conn.execute("SELECT coalesce(sum(length(record)), 0) FROM records").fetchone()[0]
        )


def test_round_trip_of_real_records(path: Path) -> None:
    with Spool.open(path, max_bytes=1 << 20) as spool:
        _fill(spool)
        assert spool.depth() == (len(RECORDS), TOTAL)
        peeked = spool.peek(1000)
        assert [r.id for r in peeked] == [id_ for id_, _, _ in RECORDS]
        assert [r.seq for r in peeked] == sorted(r.seq for r in peeked)
        assert [decode_measurement(r.record) for r in peeked] == MEASUREMENTS
        assert spool.peek(3) == peeked[:3]
        assert spool.peek(0) == []

        assert spool.ack([r.id for r in peeked[:5]]) == 5
        assert spool.peek(1000) == peeked[5:]
        assert spool.depth() == (len(RECORDS) - 5, TOTAL - sum(len(r.record) for r in peeked[:5]))
        assert spool.ack(r.id for r in peeked[5:]) == len(RECORDS) - 5
        assert spool.depth() == (0, 0)
        assert spool.evictions() == 0


def test_add_is_idempotent_on_id(path: Path) -> None:
    id_, ms, data = RECORDS[0]
    with Spool.open(path, max_bytes=1 << 20) as spool:
        assert spool.add(data, id_, ms).inserted
        again = spool.add(RECORDS[1][2], id_, ms)
        assert not again.inserted
        assert again.evicted == 0
        assert spool.peek(10) == [SpoolRecord(1, id_, data)]
        assert spool.depth() == (1, len(data))


def test_eviction_drops_oldest_first_and_counts_them(path: Path) -> None:
    cap = sum(len(data) for _, _, data in RECORDS[:10])  # exactly the first ten fit
    with Spool.open(path, max_bytes=cap) as spool:
        _fill(spool, RECORDS[:10])
        assert spool.evictions() == 0
        assert spool.depth() == (10, cap)

        id_, ms, data = RECORDS[10]
        result = spool.add(data, id_, ms)
        # Oldest first, only as many as needed to get back under the cap.
        needed, freed = 0, 0
        while freed < len(data):
            freed += len(RECORDS[needed][2])
            needed += 1
        assert result.evicted == needed
        assert spool.evictions() == needed
        ids = [r.id for r in spool.peek(100)]
        assert ids == [r[0] for r in RECORDS[needed:11]]
        count, size = spool.depth()
        assert size <= cap
        assert (count, size) == (len(ids), _stored_bytes(path))

        _fill(spool, RECORDS[11:])
        # A running total: it never decreases, and acks do not touch it.
        total = spool.evictions()
        assert total >= needed
        assert total + spool.depth()[0] == len(RECORDS)
        spool.ack([r.id for r in spool.peek(100)])
        assert spool.evictions() == total
        assert spool.depth() == (0, 0)


def test_eviction_and_its_count_are_one_transaction(path: Path) -> None:
    cap = sum(len(data) for _, _, data in RECORDS[:3])
    with Spool.open(path, max_bytes=cap) as spool:
        _fill(spool, RECORDS[:3])
        # Make the eviction's last write fail: the insert and the deletes must roll back too.
        with sqlite3.connect(path) as other:
            other.execute(
                "CREATE TRIGGER no_count BEFORE UPDATE ON meta WHEN NEW.key = 'evictions' "
                "BEGIN SELECT RAISE(ABORT, 'injected'); END"
            )
        id_, ms, data = RECORDS[3]
        with pytest.raises(SpoolError, match="injected"):
            spool.add(data, id_, ms)
        assert [r.id for r in spool.peek(100)] == [r[0] for r in RECORDS[:3]]
        assert spool.depth() == (3, cap)
        assert spool.evictions() == 0


def test_a_record_larger_than_the_spool_is_refused(path: Path) -> None:
    id_, ms, data = RECORDS[0]
    with Spool.open(path, max_bytes=len(data) - 1) as spool:
        with pytest.raises(SpoolRecordTooLarge, match="more than the whole spool"):
            spool.add(data, id_, ms)
        assert spool.depth() == (0, 0)
    with Spool.open(path, max_bytes=len(data)) as spool:
        assert spool.add(data, id_, ms).inserted  # exactly the cap fits


def test_ack_of_unknown_ids_is_harmless(path: Path) -> None:
    with Spool.open(path, max_bytes=1 << 20) as spool:
        _fill(spool, RECORDS[:4])
        assert spool.ack([]) == 0
        assert spool.ack(["no-such-id", "another"]) == 0
        assert spool.ack([RECORDS[0][0], "no-such-id", RECORDS[0][0]]) == 1
        assert spool.ack([RECORDS[0][0]]) == 0  # acknowledged twice: already gone
        assert [r.id for r in spool.peek(10)] == [r[0] for r in RECORDS[1:4]]
        assert spool.depth()[1] == _stored_bytes(path)


def test_ack_of_more_ids_than_one_statement_takes(path: Path) -> None:
    with Spool.open(path, max_bytes=1 << 24) as spool:
        data = RECORDS[0][2]
        for i in range(1200):
            spool.add(data, f"id-{i}", 0)
        assert spool.ack([f"id-{i}" for i in range(1200) if i != 777]) == 1199
        assert [r.id for r in spool.peek(10)] == ["id-777"]
        assert spool.depth() == (1, len(data))


def test_file_mode_is_0600(path: Path) -> None:
    path.touch(mode=0o644)  # even a pre-existing file made too open is tightened
    path.chmod(0o644)
    with Spool.open(path, max_bytes=1 << 20) as spool:
        _fill(spool, RECORDS[:2])
        for file in (path, path.with_name(path.name + "-wal")):
            if file.exists():
                assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    fresh = path.with_name("fresh.db")
    Spool.open(fresh, max_bytes=100).close()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_durability_pragmas_and_schema(path: Path) -> None:
    with Spool.open(path, max_bytes=1 << 20) as spool:
        conn = spool._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]


def test_a_newer_schema_is_refused(path: Path) -> None:
    Spool.open(path, max_bytes=100).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(SpoolError, match="schema version 99"):
        Spool.open(path, max_bytes=100)


def test_reopen_keeps_everything(path: Path) -> None:
    # Room for six records and for the largest (a ten-hop redirect chain), not for all.
    cap = sum(len(data) for _, _, data in RECORDS[:6]) + max(len(d) for _, _, d in RECORDS)
    assert cap < TOTAL
    with Spool.open(path, max_bytes=cap) as spool:
        _fill(spool)
        spool.ack([spool.peek(1)[0].id])
        spool.set_meta("last_upload_ms", 1_795_345_813_136)
        spool.set_meta("note", "hello")
        before = (spool.peek(100), spool.depth(), spool.evictions())
    assert before[2] > 0
    with Spool.open(path, max_bytes=cap) as spool:
        assert (spool.peek(100), spool.depth(), spool.evictions()) == before
        assert spool.get_meta("last_upload_ms") == 1_795_345_813_136
        assert spool.get_meta("note") == "hello"
        assert spool.get_meta("missing") is None
        # A re-add after reopening is still recognised as a duplicate.
        id_, ms, data = RECORDS[-1]
        assert not spool.add(data, id_, ms).inserted


def test_meta_guards_the_spools_own_counters(path: Path) -> None:
    with Spool.open(path, max_bytes=100) as spool:
        with pytest.raises(SpoolError, match="maintained by the spool"):
            spool.set_meta("evictions", 0)
        with pytest.raises(TypeError):
            spool.set_meta("flag", True)
        spool.set_meta("last_run_ms", 1)
        spool.set_meta("last_run_ms", 2)
        assert spool.get_meta("last_run_ms") == 2


def test_bad_arguments(path: Path) -> None:
    with pytest.raises(SpoolError, match="max_bytes"):
        Spool.open(path, max_bytes=0)
    with Spool.open(path, max_bytes=100) as spool:
        with pytest.raises(SpoolError, match="measurement id"):
            spool.add(b"x", "", 0)
        with pytest.raises(TypeError):
            spool.add("text", "id", 0)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_async_wrappers_from_an_event_loop(path: Path) -> None:
    with Spool.open(path, max_bytes=1 << 20) as spool:
        # Concurrent adds from the loop: the lock keeps each its own transaction.
        results = await asyncio.gather(
            *(spool.add_async(data, id_, ms) for id_, ms, data in RECORDS)
        )
        assert all(r.inserted for r in results)
        assert await spool.depth_async() == (len(RECORDS), TOTAL)
        peeked = await spool.peek_async(100)
        assert {r.id for r in peeked} == {r[0] for r in RECORDS}
        assert await spool.ack_async(r.id for r in peeked[:4]) == 4
        assert await spool.depth_async() == (len(RECORDS) - 4, spool.depth()[1])
        assert await spool.evictions_async() == 0


def test_an_unopenable_path_is_a_spool_error(tmp_path: Path) -> None:
    with pytest.raises(SpoolError, match="cannot open spool"):
        Spool.open(tmp_path / "no-such-dir" / "spool.db", max_bytes=100)

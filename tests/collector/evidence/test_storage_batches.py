"""Signed batches kept by ingest (migration 0011), on SQLite and PostgreSQL: each stored
record names its batch and place, and is exactly the bytes the agent signed there."""

from __future__ import annotations

from collections.abc import Iterator

import msgpack  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select

from agent.wire.batch import SIGNATURE_DOMAIN
from collector.storage import Storage
from collector.storage.schema import batches, measurements
from tests.collector.evidence.signed import (
    AGENT,
    KEY,
    NOW,
    clones,
    ingest_signed,
    signed_storage,
)
from tests.collector.storage.records import batch as plain_records


@pytest.fixture
def storage(storage_url: str) -> Iterator[Storage]:
    store = signed_storage(storage_url)
    try:
        yield store
    finally:
        store.close()


def _records_of(body: bytes) -> list[bytes]:
    """The raw bytes of each element of the body's ``m``, by walking the msgpack."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(body)
    out: list[bytes] = []
    for _ in range(unpacker.read_map_header()):
        if unpacker.unpack() != "m":
            unpacker.skip()
            continue
        for _ in range(unpacker.read_array_header()):
            start = unpacker.tell()
            unpacker.skip()
            out.append(body[start : unpacker.tell()])
    return out


def _kept(storage: Storage) -> dict[int, tuple[bytes, bytes, int]]:
    with storage.engine.connect() as conn:
        rows = conn.execute(select(batches).where(batches.c.agent_id == AGENT))
        return {r.seq: (bytes(r.body), bytes(r.signature), r.received_ms) for r in rows}


def _stored(storage: Storage) -> dict[bytes, tuple[int | None, int | None, bytes]]:
    m = measurements.c
    with storage.engine.connect() as conn:
        rows = conn.execute(select(m.id, m.batch_seq, m.batch_index, m.record))
        return {bytes(r[0]): (r[1], r[2], bytes(r[3])) for r in rows}


def test_each_record_is_the_signed_bytes_at_its_place_in_its_batch(storage: Storage) -> None:
    ingest_signed(storage, 1, clones(4), received_ms=NOW - 5)
    ingest_signed(storage, 2, clones(3))
    kept = _kept(storage)
    assert sorted(kept) == [1, 2]
    assert kept[1][2] == NOW - 5
    for body, signature, _ in kept.values():
        KEY.public_key().verify(signature, SIGNATURE_DOMAIN + body)  # raises if not
    stored = _stored(storage)
    assert len(stored) == 7
    for seq, index, record in stored.values():
        assert seq is not None
        assert index is not None
        assert _records_of(kept[seq][0])[index] == record


def test_a_batch_with_no_measurements_keeps_no_body(storage: Storage) -> None:
    ingest_signed(storage, 1, [], checks=[(NOW - 1000, True)])
    assert _kept(storage) == {}


def test_a_batch_stored_the_long_way_is_kept_too(storage: Storage) -> None:
    first, second = clones(2), clones(2)
    ingest_signed(storage, 1, first)
    # One record stored already: SQLite's one-statement write stops and the batch goes
    # through the transaction, which must keep it as well.
    result = ingest_signed(storage, 2, [first[1], *second])
    assert result.duplicates == [first[1].id]
    assert sorted(_kept(storage)) == [1, 2]
    stored = _stored(storage)
    assert {stored[bytes.fromhex(m.id.replace("-", ""))][0] for m in first} == {1}
    assert [stored[bytes.fromhex(m.id.replace("-", ""))][:2] for m in second] == [(2, 1), (2, 2)]


def test_a_batch_of_duplicates_only_keeps_nothing(storage: Storage) -> None:
    first = clones(2)
    ingest_signed(storage, 1, first)
    ingest_signed(storage, 2, first)
    assert sorted(_kept(storage)) == [1]


def test_records_stored_without_a_signed_batch_name_none(storage: Storage) -> None:
    storage.ingest(AGENT, plain_records(3), 64500, "PK", NOW)
    assert {seq for seq, _, _ in _stored(storage).values()} == {None}
    assert _kept(storage) == {}

"""Signed batches: exact round trips of real records, and refusal, only as BatchError, of
anything not signed by the agent's key, malformed, oversize, out of time or repeated."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.model.measurement import Verdict
from agent.wire.batch import (
    MAX_BATCH_BYTES,
    MAX_MEASUREMENTS,
    BatchError,
    Envelope,
    encode_batch,
)
from agent.wire.record import encode_measurement, measurement_to_obj
from collector.ingest.verify import read_batch_envelope, verify_batch
from tests.agent.wire.batches import (
    AGENT,
    DAY,
    KEY,
    NOW,
    OTHER_KEY,
    RECORDS,
    body,
    clones,
    reason,
    signed,
    verify,
)

SMALL = encode_batch(AGENT, 5, RECORDS[:3], KEY, created_ms=NOW)


def test_round_trip_of_every_recorded_measurement() -> None:
    data = encode_batch(AGENT, 42, RECORDS, KEY, created_ms=NOW - 5000, evictions=3)
    envelope = read_batch_envelope(data)
    assert envelope.agent_id == AGENT
    batch = verify_batch(envelope, KEY.public_key(), now_ms=NOW)
    assert (batch.agent_id, batch.seq, batch.created_ms, batch.evictions) == (
        AGENT,
        42,
        NOW - 5000,
        3,
    )
    assert batch.measurements == RECORDS
    assert batch.records == [encode_measurement(m) for m in RECORDS]


def test_no_evictions_is_not_written_and_reads_as_zero() -> None:
    inner = msgpack.unpackb(msgpack.unpackb(SMALL)["b"], raw=False)
    assert set(inner) == {"v", "a", "s", "t", "m"}
    assert verify(SMALL).evictions == 0
    assert verify(signed(body(RECORDS[:1], e=0))).evictions == 0


def test_wrong_key_is_a_signature_error() -> None:
    assert reason(SMALL, OTHER_KEY) == "signature"


def test_body_signed_without_the_domain_prefix_is_refused() -> None:
    assert reason(signed(body(RECORDS[:2]), prefix=b"")) == "signature"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_flipped_byte_is_refused(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(SMALL) - 1), label="index")
    mask = data.draw(st.integers(1, 255), label="mask")
    corrupt = bytearray(SMALL)
    corrupt[index] ^= mask
    with pytest.raises(BatchError):
        verify(bytes(corrupt))


def test_every_truncation_is_refused() -> None:
    for end in range(len(SMALL)):
        with pytest.raises(BatchError):
            verify(SMALL[:end])
    with pytest.raises(BatchError, match="trailing"):
        verify(SMALL + b"\x00")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_raise_only_batch_error(data: bytes) -> None:
    with pytest.raises(BatchError):
        verify(data)


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=40)
)
_TREES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from("vastmeiubgx") | _SCALARS, inner, max_size=6)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_TREES, st.sampled_from(["whole", "m", "measurement", "outer"]))
def test_arbitrary_signed_structures_raise_only_batch_error(tree: Any, where: str) -> None:
    # Signed with the right key, so the decoding after the signature check is exercised too.
    if where == "whole":
        data = signed(tree)
    elif where == "m":
        data = signed(body([], m=tree))
    elif where == "measurement":
        obj = measurement_to_obj(RECORDS[0])
        data = signed(body([], m=[{**obj, "a": tree}]))
    else:
        data = msgpack.packb(tree, use_bin_type=True)
    # An empty "m" is a valid batch: the property is that nothing but BatchError escapes.
    with contextlib.suppress(BatchError):
        verify(data)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"v": 2}, "schema"),
        ({"v": True}, "schema"),
        ({"s": -1}, "schema"),
        ({"t": "now"}, "schema"),
        ({"e": -3}, "schema"),
        ({"x": 1}, "schema"),
        ({"m": {}}, "schema"),
        ({"a": ""}, "agent"),
        ({"a": "has space"}, "agent"),
        ({"a": "x" * 65}, "agent"),
        ({"a": 7}, "agent"),
    ],
)
def test_malformed_bodies_are_refused(fields: dict[str, Any], expected: str) -> None:
    assert reason(signed(body(RECORDS[:1], **fields))) == expected


def test_missing_keys_trailing_bytes_and_a_bad_measurement_are_schema_errors() -> None:
    for key in "vastm":
        incomplete = body(RECORDS[:1])
        del incomplete[key]
        assert reason(signed(incomplete)) == "schema", key
    assert reason(signed(msgpack.packb(body(RECORDS[:1])) + b"\xc0")) == "schema"
    bad = {**measurement_to_obj(RECORDS[0]), "z": 1}
    with pytest.raises(BatchError, match=r"batch\.m\[1\]: .*unexpected key"):
        verify(signed(body(RECORDS[:1], m=[measurement_to_obj(RECORDS[1]), bad])))


def packed_map(pairs: list[tuple[str, Any]]) -> bytes:
    """A msgpack map of these entries in this order, repeats included."""
    entries = (msgpack.packb(k) + msgpack.packb(v, use_bin_type=True) for k, v in pairs)
    return bytes([0x80 | len(pairs)]) + b"".join(entries)


@pytest.mark.parametrize(
    "tail", [[("e", 0), ("e", 1)], [("z", 1)]], ids=["repeated-key", "unknown-key"]
)
def test_keys_after_the_measurements_are_checked_after_the_signature(
    tail: list[tuple[str, Any]],
) -> None:
    # The walk before the signature stops at the measurements once it has the agent id.
    data = signed(packed_map([*body(RECORDS[:1]).items(), *tail]))
    assert read_batch_envelope(data).agent_id == AGENT
    with pytest.raises(BatchError, match=r"repeated key|unknown field") as info:
        verify(data)
    assert info.value.reason == "schema"


def test_envelope_agent_must_match_the_signed_body() -> None:
    envelope = read_batch_envelope(SMALL)
    forged = Envelope("someone-else", envelope.body, envelope.signature)
    with pytest.raises(BatchError) as info:
        verify_batch(forged, KEY.public_key(), now_ms=NOW)
    assert info.value.reason == "agent"


def test_oversize_batches_are_refused() -> None:
    too_many = clones(MAX_MEASUREMENTS + 1)
    with pytest.raises(BatchError) as info:
        encode_batch(AGENT, 1, too_many, KEY, created_ms=NOW)
    assert info.value.reason == "size"
    # Found before the signature, from the array header alone.
    assert reason(signed(body(too_many)), OTHER_KEY) == "size"
    assert reason(b"\x00" * (MAX_BATCH_BYTES + 1)) == "size"

    evidence: dict[str, str | int | float | bool] = {f"k{i}": "e" * 256 for i in range(16)}
    bulky = [
        dataclasses.replace(
            m, url="https://example.org/" + "p" * 4000, verdict=Verdict("ok", evidence)
        )
        for m in clones(MAX_MEASUREMENTS)
    ]
    with pytest.raises(BatchError) as info:
        encode_batch(AGENT, 1, bulky, KEY, created_ms=NOW)
    assert info.value.reason == "size"


def test_a_record_over_64_kib_is_refused() -> None:
    m = next(m for m in RECORDS if m.agent.endpoints and m.agent.endpoints[0].http)
    endpoint = m.agent.endpoints[0]
    assert endpoint.http is not None
    http = dataclasses.replace(endpoint.http, path="/" + "p" * 4000, location="l" * 4000)
    endpoint = dataclasses.replace(endpoint, http=http, http_benign=http)
    huge = dataclasses.replace(m, agent=dataclasses.replace(m.agent, endpoints=(endpoint,) * 16))
    with pytest.raises(BatchError) as info:
        encode_batch(AGENT, 1, [huge], KEY, created_ms=NOW)
    assert info.value.reason == "size"
    assert reason(signed(body([huge]))) == "size"


@pytest.mark.parametrize(
    ("created", "started", "ok"),
    [
        (NOW + 4 * 60_000, None, True),  # within the clock skew allowed
        (NOW + 6 * 60_000, None, False),
        (NOW - 31 * DAY, None, False),
        (NOW, NOW - 7 * DAY, True),  # spooled through a week-long shutdown
        (NOW, NOW - 29 * DAY, True),
        (NOW, NOW - 31 * DAY, False),
        (NOW, NOW + 6 * 60_000, False),
    ],
)
def test_timestamps_must_be_sane(created: int, started: int | None, ok: bool) -> None:
    m = RECORDS[0] if started is None else dataclasses.replace(RECORDS[0], started_ms=started)
    data = encode_batch(AGENT, 1, [RECORDS[1], m], KEY, created_ms=created)
    if ok:
        assert verify(data).measurements[1] == m
    else:
        assert reason(data) == "timestamp"


def test_duplicate_ids_are_refused() -> None:
    twice = [RECORDS[0], RECORDS[1], RECORDS[0]]
    with pytest.raises(BatchError) as info:
        encode_batch(AGENT, 1, twice, KEY, created_ms=NOW)
    assert info.value.reason == "duplicate_id"
    assert reason(signed(body(twice))) == "duplicate_id"
    same_id = dataclasses.replace(RECORDS[1], id=RECORDS[0].id)
    assert reason(signed(body([RECORDS[0], same_id]))) == "duplicate_id"


def test_size_and_speed_of_500_records(capsys: pytest.CaptureFixture[str]) -> None:
    ms = clones(500)
    start = time.perf_counter()
    data = encode_batch(AGENT, 1, ms, KEY, created_ms=NOW)
    signed_at = time.perf_counter()
    batch = verify(data)
    verified_at = time.perf_counter()
    assert batch.measurements == ms
    single = sum(len(encode_measurement(m)) for m in ms)
    with capsys.disabled():
        print(
            f"\nbatch of 500 recorded measurements: {len(data)} bytes "
            f"({len(data) / 500:.0f} per measurement; {single} as single records); "
            f"encode + sign {1000 * (signed_at - start):.1f} ms, "
            f"read + verify + decode {1000 * (verified_at - signed_at):.1f} ms"
        )
    assert len(data) < 500 * 1024

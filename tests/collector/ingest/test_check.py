"""The collector's compiled record check (collector.ingest.check) against the codecs' decoder.

check_measurement must refuse exactly what decode_measurement refuses, with the same
message, and give the columns of the record decode_measurement builds. The compiled check
itself must be sound (whatever it accepts, the decoder accepts) and must accept every real
record, or ingest silently falls back to the slow path.
"""

from __future__ import annotations

import copy
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.wire.record import MAX_RECORD, WireError, decode_measurement, encode_measurement
from collector.ingest import check as wire_check
from collector.ingest.check import DECODERS
from collector.ingest.columns import (
    RecordError,
    check_measurement,
    check_measurements,
    record_check,
)
from tests.agent.observations import RECORDED
from tests.agent.wire.examples import REDIRECTED
from tests.collector.traces import trace_measurement

_CHECK = record_check()


def _records() -> list[bytes]:
    out = []
    names = ("with-control.msgpack", "without-control.msgpack")
    for path in [RECORDED / n for n in names] + [RECORDED / "v1" / n for n in names]:
        with path.open("rb") as handle:
            out += [msgpack.packb(obj, use_bin_type=True) for obj in msgpack.Unpacker(handle)]
    return out


# Records the lab recorded, now and as older agents sent them (v1/), a redirect example and
# a trace.
RECORDS = [*_records(), encode_measurement(REDIRECTED), encode_measurement(trace_measurement())]
OBJS = [msgpack.unpackb(r, raw=False) for r in RECORDS]


def _outcome(call: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "ok", call(data)
    except WireError as exc:
        return "error", str(exc)


def _same_as_decoder(data: bytes) -> None:
    decoded = _outcome(decode_measurement, data)
    checked = _outcome(check_measurement, data)
    assert checked[0] == decoded[0], (checked, decoded)
    if decoded[0] == "error":
        assert checked[1] == decoded[1]
        assert _CHECK(data) is None, "the compiled check accepted a record the decoder refuses"
    else:
        m, columns = decoded[1], checked[1]
        assert (columns.id, columns.started_ms, columns.url, columns.verdict) == (
            m.id,
            m.started_ms,
            m.url,
            m.verdict.verdict,
        )


def test_every_recorded_record_takes_the_fast_path() -> None:
    assert len(RECORDS) > 30
    for data in RECORDS:
        assert _CHECK(data) is not None
        _same_as_decoder(data)


def _paths(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(obj, dict):
        for key, value in obj.items():
            out += _paths(value, (*path, key))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            out += _paths(value, (*path, index))
    return out


def _at(obj: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        obj = obj[step]
    return obj


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, 1, 3, 4, 16, 32, 63, 64, 65, 4095, 4096, 2**32, 2**63]),
    st.floats(allow_nan=False),
    st.text(max_size=300),
    st.binary(max_size=40),
    st.sampled_from([b"\x00" * 4, b"\x01" * 16, b"\x02" * 32, b"\x03" * 5, b"\x04" * 15]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from("abdefghiklmnopqrstuvxyz"), inner, max_size=3),
    ),
    max_leaves=6,
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    obj = copy.deepcopy(draw(st.sampled_from(OBJS)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(obj)))
        action = draw(st.sampled_from(["replace", "delete", "add", "swap"]))
        if not path:
            continue
        parent, last = _at(obj, path[:-1]), path[-1]
        if action == "replace":
            parent[last] = draw(VALUES)
        elif action == "delete":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=2))] = draw(VALUES)
        elif action == "swap":
            # Another real value from elsewhere in a record: plausible but misplaced.
            other = draw(st.sampled_from(OBJS))
            parent[last] = copy.deepcopy(_at(other, draw(st.sampled_from(_paths(other)))))
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_refuses_exactly_what_the_decoder_refuses(data: bytes) -> None:
    _same_as_decoder(data)


@pytest.mark.parametrize(
    ("mutate", "fast_path"),
    [
        (lambda o: o.update(b=[*o["b"], b"\x00" * 5]), False),  # a bin-table entry of 5 bytes
        (lambda o: o["a"]["e"][0].update(a=len(o["b"])), False),  # an index past the table
        (lambda o: o["a"]["e"][0].update(a=b"\x01\x02\x03\x04\x05"), False),  # a 5-byte address
        (lambda o: o["a"]["e"][0].update(a="not an address"), True),  # text is kept as is
        (lambda o: o.update(u="https:///"), False),  # no host, so names must be written out
        (lambda o: o.update(i=uuid.UUID(int=1).bytes), False),  # time 0: "t" must be written
        (lambda o: o.update(v=3), False),
        (lambda o: o.update(v=2), True),  # every new record is version 2
        (lambda o: o["r"].update(v=None), False),  # an explicit nil
    ],
)
def test_what_the_compiled_check_leaves_to_the_decoder(mutate: Any, fast_path: bool) -> None:
    obj = copy.deepcopy(next(o for o in OBJS if "b" in o and o["a"].get("e")))
    mutate(obj)
    data = msgpack.packb(obj, use_bin_type=True)
    assert (_CHECK(data) is not None) is fast_path
    _same_as_decoder(data)


def test_a_version_1_record_with_a_trace_goes_to_the_decoder() -> None:
    """The compiled check alone would take it: the trace is well formed, only too new."""
    obj = copy.deepcopy(next(o for o in OBJS if "R" in o))
    obj.pop("s", None)  # the text table is a version 2 field too
    obj["v"] = 1
    data = msgpack.packb(obj, use_bin_type=True)
    assert _CHECK(data) is None
    _same_as_decoder(data)
    with pytest.raises(WireError, match=r"^measurement\.R: needs schema version 2$"):
        check_measurement(data)


def _with_tls() -> dict[str, Any]:
    return copy.deepcopy(next(o for o in OBJS if "b" in o and "s" in o["a"].get("e", [{}])[0]))


def _index(obj: dict[str, Any], hashes: bool) -> int:
    return next(i for i, entry in enumerate(obj["b"]) if (len(entry) == 32) is hashes)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o["a"]["e"][0]["s"].update(l=_index(o, hashes=False)),  # a hash -> an address
        lambda o: o["a"]["e"][0].update(a=_index(o, hashes=True)),  # an address -> a hash
    ],
)
def test_a_remembered_reference_layout_gives_the_same_answer(
    mutate: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check remembers per decoder whether a layout (bin sizes, reference indexes)
    # fits: a valid record's layout must not vouch for a misplaced reference, and the
    # bound (small here, so it is reached) only makes it forget.
    monkeypatch.setattr(wire_check, "_LAYOUTS", 2)
    obj = _with_tls()
    good = msgpack.packb(obj, use_bin_type=True)
    mutate(obj)
    bad = msgpack.packb(obj, use_bin_type=True)
    with _CHECK.checking() as check:
        for _ in range(3):
            assert check(good) is not None
            assert check(bad) is None
            assert check(RECORDS[0]) is not None
        assert len(check.__self__.layouts) <= 2  # type: ignore[attr-defined]
    _same_as_decoder(bad)


def test_oversized_and_garbage() -> None:
    _same_as_decoder(b"\xc1")
    _same_as_decoder(RECORDS[0] + b"\x00")
    _same_as_decoder(RECORDS[0][:-3])
    with pytest.raises(WireError, match="record limit"):
        check_measurement(b"\x00" * (MAX_RECORD + 1))


def test_a_batch_is_checked_in_one_pass_with_the_index_of_the_first_refused() -> None:
    columns = check_measurements(RECORDS)
    assert columns == [check_measurement(data) for data in RECORDS]
    assert [c.record for c in columns] == RECORDS
    broken = [*RECORDS[:5], b"\xc1", RECORDS[6], b"\x00" * (MAX_RECORD + 1)]
    with pytest.raises(RecordError) as refused:
        check_measurements(broken)
    assert refused.value.index == 5
    assert str(refused.value) == _outcome(decode_measurement, b"\xc1")[1]


def test_more_threads_than_decoders_check_at_once() -> None:
    # Each check takes one of the pool's decoders for its records; the rest wait for one.
    with ThreadPoolExecutor(DECODERS + 4) as pool:
        results = list(pool.map(check_measurements, [RECORDS] * (DECODERS * 3)))
    assert all(result == results[0] for result in results)

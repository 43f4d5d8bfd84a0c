"""A trace's record (key ``R``): an exact round trip of every field (IPv4 and IPv6, packets
without an IP ID), the longest trace the array bound allows and no longer, refused in a
version 1 record, and refused whenever a field is out of its type or range; the collector's
compiled check agrees with the decoder on each."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from agent.model import failures as f
from agent.model import trace as t
from agent.model.trace import TraceAttempt, TraceObservation, TracePacket, TraceReference
from agent.wire.record import (
    MAX_RECORD,
    MAX_TRACE_ATTEMPTS,
    WireError,
    decode_measurement,
    encode_measurement,
)
from collector.ingest.columns import check_measurement
from tests.agent.traces import BEYOND, REFERENCE, SERVER, SERVER6, hops, last, measurement, pair

FP = "cp.b_nat_pak_isp_common_blockpage"


def full(address: str, routers: tuple[str, ...], reference: str) -> TraceObservation:
    """A trace with every field away from its default."""
    attempts = (
        *hops(*routers),
        TraceAttempt(4, False, t.DATA, None, 31.0, 200, None),
        TraceAttempt(4, True, t.DATA, None, 33.0, 403, FP),
        TraceAttempt(
            t.FULL_TTL, True, t.DATA, None, 35.0, 403, FP,
            (
                TracePacket("synack", 60, 4321, 0.0),
                TracePacket("data", 62, None, 12.0),
                TracePacket("data", 60, 0, 14.0),
                TracePacket("fin", 60, 65535, 15.0),
            ),
        ),
    )  # fmt: skip
    return TraceObservation(
        trigger="host",
        name="blocked.example",
        benign="example.com",
        address=address,
        port=80,
        attempts=attempts,
        references=(
            TraceReference(address, 443, TracePacket("rst", 62, None, 0.0)),
            TraceReference(reference, 80, None),
        ),
        max_ttl=32,
        packets_sent=len(attempts) + 2,
        failure=f.GENERIC_TIMEOUT,
    )


V4 = full(SERVER, ("203.0.113.1", "100.64.0.1", "198.51.100.3"), REFERENCE)
V6 = full(SERVER6, ("2001:db8:1::1", "2001:db8:2::1", "2001:db8:3::1"), "2001:db8::200")


def _round_trip(obs: TraceObservation) -> TraceObservation:
    m = measurement(obs)
    data = encode_measurement(m)
    assert check_measurement(data).verdict == m.verdict.verdict  # the collector agrees
    decoded = decode_measurement(data)
    assert decoded == m
    assert decoded.trace is not None
    return decoded.trace


@pytest.mark.parametrize("obs", [V4, V6], ids=["ipv4", "ipv6"])
def test_round_trip_is_exact(obs: TraceObservation) -> None:
    assert _round_trip(obs) == obs
    # Names the record implies (the URL's host) and the trigger's text both come back.
    ip = replace(obs, trigger="ip", name=obs.address, benign=REFERENCE, failure=t.UNAVAILABLE)
    assert _round_trip(ip) == ip
    bare = TraceObservation("sni", "blocked.example", "example.com", obs.address, 443)
    assert _round_trip(bare) == bare


def _longest(count: int) -> TraceObservation:
    # Every router distinct (more than the bin table interns), the last attempt's packets
    # as many as the probe keeps.
    routers = [f"2001:db8:{i:x}::1" for i in range(count - 1)]
    attempts = [
        TraceAttempt(i // 2 + 1, bool(i % 2), t.EXCEEDED, router, float(i))
        for i, router in enumerate(routers)
    ]
    packets = tuple(TracePacket("data", 60, i, float(i)) for i in range(32))
    attempts.append(last(t.RESET, *packets))
    return TraceObservation(
        "sni", "blocked.example", "example.com", SERVER6, 443, tuple(attempts), max_ttl=255
    )


def test_the_longest_trace_travels() -> None:
    obs = _longest(MAX_TRACE_ATTEMPTS)
    assert len(obs.attempts) == 160
    assert _round_trip(obs) == obs
    assert len(encode_measurement(measurement(obs))) < MAX_RECORD


def test_one_attempt_more_is_refused() -> None:
    too_long = measurement(_longest(MAX_TRACE_ATTEMPTS + 1))
    with pytest.raises(WireError, match="attempts"):
        encode_measurement(too_long)
    # Built by hand past the encoder, the decoder and the collector refuse it too.
    obj = _obj(measurement(_longest(MAX_TRACE_ATTEMPTS)))
    obj["R"]["x"].insert(0, obj["R"]["x"][0])
    data = msgpack.packb(obj, use_bin_type=True)
    with pytest.raises(WireError):
        decode_measurement(data)
    with pytest.raises(WireError):
        check_measurement(data)


def _obj(m: Any) -> dict[str, Any]:
    obj: dict[str, Any] = msgpack.unpackb(encode_measurement(m), raw=False)
    return obj


def test_a_version_1_record_cannot_carry_a_trace() -> None:
    obj = _obj(measurement(V4))
    obj["v"] = 1
    data = msgpack.packb(obj, use_bin_type=True)
    with pytest.raises(WireError, match="needs schema version 2"):
        decode_measurement(data)
    with pytest.raises(WireError):
        check_measurement(data)


LAST = len(V4.attempts) - 1


@pytest.mark.parametrize(
    ("where", "value", "field"),
    [
        pytest.param(("x", 0, "r"), 5, "attempts[0].reaction", id="reaction-int"),
        pytest.param(("x", 0, "r"), b"rst", "attempts[0].reaction", id="reaction-bytes"),
        pytest.param(("x", 0, "r"), "x" * 17, "attempts[0].reaction", id="reaction-too-long"),
        pytest.param(("x", 0, "t"), 256, "attempts[0].ttl", id="ttl-256"),
        pytest.param(("x", 0, "t"), -1, "attempts[0].ttl", id="ttl-negative"),
        pytest.param(("x", 0, "k"), 1, "attempts[0].trigger", id="trigger-not-bool"),
        pytest.param(
            ("x", LAST, "x", 0, "t"), 256, f"attempts[{LAST}].packets[0].ttl", id="packet-ttl-256"
        ),
        pytest.param(
            ("x", LAST, "x", 0, "i"), 65536, f"attempts[{LAST}].packets[0].ip_id", id="packet-ip-id"
        ),
        pytest.param(
            ("x", LAST, "x", 0, "k"),
            "synackack",
            f"attempts[{LAST}].packets[0].kind",
            id="packet-kind-too-long",
        ),
        pytest.param(("e", 0, "p"), 65536, "references[0].port", id="reference-port"),
        pytest.param(("y",), 1, "trigger", id="trigger-int"),
        pytest.param(("m",), 256, "max_ttl", id="max-ttl-256"),
    ],
)
def test_out_of_range_fields_are_refused(
    where: tuple[str | int, ...], value: object, field: str
) -> None:
    obj = _obj(measurement(V4))
    node: Any = obj["R"]
    for step in where[:-1]:
        node = node[step]
    node[where[-1]] = value
    data = msgpack.packb(obj, use_bin_type=True)
    with pytest.raises(WireError, match=re.escape(f"measurement.trace.{field}: ")):
        decode_measurement(data)
    with pytest.raises(WireError):
        check_measurement(data)


@pytest.mark.parametrize(
    "attempt",
    [
        TraceAttempt(256, True, t.RESET),
        TraceAttempt(0, True, 5),  # type: ignore[arg-type]  # the wrong type, on purpose
        TraceAttempt(3, True, "x" * 17),
        TraceAttempt(3, True, t.RESET, packets=(TracePacket("rst", 300, 0, 0.0),)),
        TraceAttempt(3, True, t.RESET, packets=(TracePacket("rst", 60, 70000, 0.0),)),
        TraceAttempt(3, True, t.EXCEEDED, router="not an address" * 30),
    ],
    ids=["ttl-256", "reaction-int", "reaction-long", "packet-ttl", "packet-ip-id", "router"],
)
def test_the_encoder_refuses_what_the_decoder_would(attempt: TraceAttempt) -> None:
    obs = TraceObservation("sni", "blocked.example", "example.com", SERVER, 443, (attempt,))
    with pytest.raises(WireError):
        encode_measurement(measurement(obs))


def test_an_unreachable_reaction_travels() -> None:
    obs = TraceObservation(
        "ip", SERVER, REFERENCE, SERVER, 443,
        (*pair(1, t.UNREACHABLE, t.EXCEEDED, router=BEYOND), last(t.UNREACHABLE)),
    )  # fmt: skip
    assert _round_trip(obs) == obs

"""Wire schema v1, property tests: any measurement round trips exactly (up to what
``normalise`` allows), and any bytes, mutated encoding or wrong shape fails only as WireError."""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.model import failures
from agent.model.measurement import SiteMeasurement, Vantage, Verdict
from agent.model.observations import (
    DNSExchange,
    DNSObservation,
    DNSReply,
    EndpointObservation,
    HTTPRoundTrip,
    SystemResolution,
    TCPConnect,
    TLSHandshake,
)
from agent.wire.record import (
    FAILURE_CODES,
    WireError,
    decode_measurement,
    decode_vantage,
    encode_measurement,
    encode_vantage,
    measurement_from_obj,
    measurement_to_obj,
)
from tests.agent.wire.examples import HOST, normalise

names = st.sampled_from([HOST, "example.com", "xn--bcher-kva.example"]) | st.text(max_size=40)
addresses = st.ip_addresses().map(str) | st.sampled_from(["fe80::1%eth0", "::ffff:192.0.2.1"])
address_lists = st.lists(addresses, max_size=4).map(tuple)
durations = st.floats(0, 60_000, allow_nan=False)
small = st.integers(0, 2**31)
hashes = st.none() | st.binary(min_size=32, max_size=32).map(bytes.hex)
texts = st.none() | st.text(max_size=60)
failure_values = (
    st.none()
    | st.sampled_from(sorted(FAILURE_CODES.values()))
    | st.text(max_size=40).map(failures.unknown)
)
rcodes = st.sampled_from(
    ["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "BADSIG", "4000"]
) | st.text(max_size=8)
qtypes = st.sampled_from(["A", "AAAA"])
ports = st.integers(0, 65535)
ttls = st.none() | st.integers(0, 2**32 - 1)

replies = st.builds(
    DNSReply,
    addresses,
    ports,
    durations,
    rcodes,
    address_lists,
    ttls,
    st.none() | st.integers(0, 255),
)
exchanges = st.builds(
    DNSExchange,
    addresses,
    ports,
    names,
    qtypes,
    st.lists(replies, max_size=3).map(tuple),
    durations,
    failure_values,
)
systems = st.builds(
    SystemResolution, names, qtypes, address_lists, st.none() | addresses, st.none() | rcodes,
    address_lists, ttls, durations, failure_values,
)  # fmt: skip
handshakes = st.builds(
    TLSHandshake, names, texts, st.none() | st.sampled_from(["TLS_AES_128_GCM_SHA256", "X"]),
    st.none() | st.sampled_from(["http/1.1", "h2", "spdy/3"]), hashes, hashes, st.integers(0, 10),
    texts, st.booleans(), failure_values, durations, failure_values,
)  # fmt: skip
round_trips = st.builds(
    HTTPRoundTrip, names, st.text(max_size=30), st.none() | st.integers(0, 999),
    texts, texts, texts,
    st.none() | small, small, small, st.booleans(), hashes, st.none() | st.text(max_size=200),
    durations, failure_values, texts,
)  # fmt: skip


@st.composite
def endpoints(draw: st.DrawFn) -> EndpointObservation:
    ip, port = draw(addresses), draw(ports)
    tcp_ip = draw(st.just(ip) | addresses)
    tcp = TCPConnect(tcp_ip, draw(st.just(port) | ports), draw(durations), draw(failure_values))
    maybe = st.none()
    return EndpointObservation(
        ip, port, tcp, draw(maybe | handshakes), draw(maybe | handshakes),
        draw(maybe | round_trips), draw(maybe | round_trips),
    )  # fmt: skip


vantages = st.builds(
    Vantage,
    st.builds(
        DNSObservation,
        systems,
        st.lists(exchanges, max_size=2).map(tuple),
        st.none() | systems,
        st.lists(exchanges, max_size=2).map(tuple),
    ),
    st.lists(endpoints(), max_size=2).map(tuple),
)
evidence_values = (
    st.text(max_size=50)
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.booleans()
)
measurements = st.builds(
    SiteMeasurement, st.uuids().map(str),
    st.sampled_from([f"https://{HOST}/", "http://a.example:8080/x?y"]) | st.text(max_size=30),
    st.integers(0, 2**62), durations, vantages, st.none() | vantages,
    st.none() | st.just("no_control") | failure_values, st.none() | st.booleans(),
    st.builds(
        Verdict, st.text(max_size=20),
        st.dictionaries(st.text(max_size=20), evidence_values, max_size=16),
    ),
)  # fmt: skip

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(measurements)
def test_round_trip_property(m: SiteMeasurement) -> None:
    assert decode_measurement(encode_measurement(m)) == normalise(m)


@PROPERTY
@given(vantages)
def test_vantage_round_trip_property(v: Vantage) -> None:
    assert decode_vantage(encode_vantage(v)) == normalise(v)


def _decodes_or_wire_error(data: bytes) -> None:
    with contextlib.suppress(WireError):
        assert isinstance(decode_measurement(data), SiteMeasurement)
    with contextlib.suppress(WireError):
        assert isinstance(decode_vantage(data), Vantage)


@PROPERTY
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    _decodes_or_wire_error(data)


@PROPERTY
@given(measurements, st.data())
def test_mutated_encodings_raise_only_wire_error(m: SiteMeasurement, data: st.DataObject) -> None:
    encoded = bytearray(encode_measurement(m))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(encoded) - 1))
        encoded[at] = data.draw(st.integers(0, 255))
    _decodes_or_wire_error(bytes(encoded))
    cut = data.draw(st.integers(0, len(encoded) - 1))
    _decodes_or_wire_error(bytes(encoded[:cut]))


@PROPERTY
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(list("vbituadcfoernsqp")) | st.text(max_size=2), inner, max_size=6
    ),
))  # fmt: skip
def test_wrong_shapes_raise_only_wire_error(obj: Any) -> None:
    if isinstance(obj, dict) and obj:
        obj["v"] = 1
    try:
        packed = msgpack.packb(obj)
    except (OverflowError, ValueError):
        return
    _decodes_or_wire_error(packed)


@PROPERTY
@given(measurements, st.integers() | st.text(max_size=3) | st.none() | st.booleans() | st.floats())
def test_other_versions_rejected(m: SiteMeasurement, version: Any) -> None:
    obj = measurement_to_obj(m)
    if version in (1, 2) and type(version) is int:
        return
    obj["v"] = version
    with pytest.raises(WireError, match="version"):
        measurement_from_obj(obj)
    try:
        packed = msgpack.packb(obj)
    except OverflowError:
        return
    with pytest.raises(WireError, match="version"):
        decode_measurement(packed)

"""Wire schema v1: exact round trips, compactness, and decoding that fails only as WireError."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import uuid
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.model import failures
from agent.model.measurement import SiteMeasurement, Vantage, Verdict, new_measurement_id
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
    MAX_RECORD,
    WireError,
    decode_measurement,
    decode_vantage,
    encode_measurement,
    encode_vantage,
    measurement_from_obj,
    measurement_to_obj,
)

HOST = "www.example.org"
ID = new_measurement_id(1_717_171_717_171)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def system(addresses: tuple[str, ...] = ("192.0.2.10",), **kw: Any) -> SystemResolution:
    fields: dict[str, Any] = {
        "name": HOST,
        "qtype": "A",
        "nameservers": ("100.64.0.53",),
        "server": "100.64.0.53",
        "rcode": "NOERROR",
        "addresses": addresses,
        "answer_ttl": 300,
        "ms": 12.4,
        "failure": None,
    }
    return SystemResolution(**{**fields, **kw})


def reply(source: str, ms: float, addresses: tuple[str, ...], ip_ttl: int) -> DNSReply:
    return DNSReply(source, 53, ms, "NOERROR", addresses, 300, ip_ttl)


def exchange(*replies: DNSReply) -> DNSExchange:
    failure = None if replies else failures.GENERIC_TIMEOUT
    return DNSExchange("198.51.100.53", 53, HOST, "A", replies, 301.7, failure)


def tls(sni: str = HOST, **kw: Any) -> TLSHandshake:
    fields: dict[str, Any] = {
        "sni": sni,
        "version": "TLSv1.3",
        "cipher": "TLS_AES_256_GCM_SHA384",
        "alpn": "http/1.1",
        "leaf_sha256": sha("leaf"),
        "chain_sha256": sha("chain"),
        "chain_length": 2,
        "issuer": "Netsonde Lab CA",
        "validated": True,
        "validation_failure": None,
        "ms": 8.6,
        "failure": None,
    }
    return TLSHandshake(**{**fields, **kw})


def http(host: str = HOST, **kw: Any) -> HTTPRoundTrip:
    fields: dict[str, Any] = {
        "host": host,
        "path": "/",
        "status": 200,
        "server": "nginx",
        "location": None,
        "content_type": "text/html; charset=utf-8",
        "content_length": 1256,
        "set_cookie_count": 0,
        "body_length": 1256,
        "body_truncated": False,
        "body_sha256": sha("body"),
        "title": "Example Domain",
        "ms": 15.2,
        "failure": None,
    }
    return HTTPRoundTrip(**{**fields, **kw})


def endpoint(ip: str = "192.0.2.10", port: int = 443, **kw: Any) -> EndpointObservation:
    tcp = kw.pop("tcp", TCPConnect(ip, port, 4.3, None))
    return EndpointObservation(ip=ip, port=port, tcp=tcp, **kw)


def clean_vantage() -> Vantage:
    dns = DNSObservation(system(), (exchange(reply("198.51.100.53", 21.5, ("192.0.2.10",), 57)),))
    return Vantage(dns, (endpoint(tls=tls(), http=http()),))


def site(agent: Vantage, verdict: Verdict, *, url: str = f"https://{HOST}/") -> SiteMeasurement:
    return SiteMeasurement(
        ID, url, 1_717_171_717_171, 431.9, agent, clean_vantage(), None, None, verdict
    )


CLEAN = site(clean_vantage(), Verdict("accessible"))
INJECTED = site(
    Vantage(
        DNSObservation(
            system(("203.0.113.66",)),
            (
                exchange(
                    reply("198.51.100.53", 3.1, ("203.0.113.66",), 61),
                    reply("198.51.100.53", 24.9, ("192.0.2.10",), 57),
                ),
            ),
        ),
        (
            endpoint(
                "203.0.113.66",
                tls=tls(
                    validated=False,
                    validation_failure=failures.SSL_INVALID_HOSTNAME,
                    issuer="Blockpage Inc",
                ),
            ),
        ),
    ),
    Verdict("dns_injection", {"injected": "203.0.113.66", "first_ttl": 61, "gap_ms": 21.8}),
)
TLS_FAILED = site(
    Vantage(
        clean_vantage().dns,
        (
            endpoint(
                tls=tls(
                    version=None,
                    cipher=None,
                    alpn=None,
                    leaf_sha256=None,
                    chain_sha256=None,
                    chain_length=0,
                    issuer=None,
                    validated=False,
                    failure=failures.CONNECTION_RESET,
                ),
                tls_benign=tls("example.com"),
            ),
        ),
    ),
    Verdict("tls_sni_blocking", {"failure": failures.CONNECTION_RESET, "benign_ok": True}),
)
HOST_SWAP = site(
    Vantage(
        clean_vantage().dns,
        (
            endpoint(
                port=80,
                http=http(
                    status=None,
                    server=None,
                    content_type=None,
                    content_length=None,
                    body_length=0,
                    body_sha256=None,
                    title=None,
                    failure=failures.CONNECTION_RESET,
                ),
                http_benign=http("example.com", title="Benign"),
            ),
        ),
    ),
    Verdict("http_host_blocking"),
    url=f"http://{HOST}/",
)
NO_CONTROL = dataclasses.replace(CLEAN, control=None, control_failure="no_control")
EXAMPLES = {
    "clean": CLEAN,
    "clean_no_control": NO_CONTROL,
    "injected": INJECTED,
    "tls_failed": TLS_FAILED,
    "host_swap": HOST_SWAP,
}
# Exact sizes, so a change in the encoding shows up here and is a deliberate decision.
# Every example carries the control's view too, except clean_no_control.
SIZES = {
    "clean": 543,
    "clean_no_control": 372,
    "injected": 570,
    "tls_failed": 560,
    "host_swap": 525,
}


def normalise(value: Any) -> Any:
    """What the wire promises to keep: ms rounded to whole numbers, titles cut to 128."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            if field.name == "ms":
                item = float(round(item))
            elif field.name == "title" and item is not None:
                item = item[:128]
            else:
                item = normalise(item)
            changes[field.name] = item
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(normalise(item) for item in value)
    return value


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_round_trip_and_sizes(name: str) -> None:
    m = EXAMPLES[name]
    data = encode_measurement(m)
    print(f"{name}: {len(data)} bytes")
    assert decode_measurement(data) == normalise(m)
    assert len(data) == SIZES[name]
    assert len(data) < 600


def test_verdict_inputs_survive() -> None:
    back = decode_measurement(encode_measurement(INJECTED))
    replies = back.agent.dns.public[0].replies
    assert [(r.addresses, r.ip_ttl) for r in replies] == [
        (("203.0.113.66",), 61),
        (("192.0.2.10",), 57),
    ]
    handshake = back.agent.endpoints[0].tls
    assert handshake is not None
    assert handshake.validation_failure == failures.SSL_INVALID_HOSTNAME
    assert (handshake.leaf_sha256, handshake.issuer) == (sha("leaf"), "Blockpage Inc")
    assert back.verdict.evidence == {"injected": "203.0.113.66", "first_ttl": 61, "gap_ms": 21.8}
    swapped = decode_measurement(encode_measurement(HOST_SWAP)).agent.endpoints[0]
    assert swapped.http is not None
    assert swapped.http.failure == failures.CONNECTION_RESET
    assert swapped.http_benign is not None
    assert swapped.http_benign.host == "example.com"


def test_obj_is_plain_and_embeddable() -> None:
    obj = measurement_to_obj(CLEAN)
    assert obj["v"] == 1
    assert obj["i"] == uuid.UUID(ID).bytes
    # A batch embeds the object; packing the batch and unpacking it must give it back.
    batch = msgpack.unpackb(msgpack.packb({"m": [obj, obj]}), raw=False)
    assert [measurement_from_obj(o) for o in batch["m"]] == [normalise(CLEAN)] * 2


def test_compact_details() -> None:
    obj = measurement_to_obj(TLS_FAILED)
    endpoint_obj = obj["a"]["e"][0]
    assert set(endpoint_obj) == {"a", "t", "s", "S"}  # the port is the URL's
    assert endpoint_obj["t"] == {"d": 4}  # TCP address and port implied by the endpoint
    assert "n" not in endpoint_obj["s"]  # the SNI is the URL's host
    assert endpoint_obj["s"]["f"] == 2  # connection_reset
    assert endpoint_obj["S"]["n"] == "example.com"
    assert "o" not in endpoint_obj["s"]
    assert endpoint_obj["S"]["o"] is True
    assert "t" not in obj  # started_ms is the UUIDv7's timestamp
    # Each distinct address or hash is written once, in "b", and referred to by index.
    assert obj["b"][obj["a"]["n"]["s"]["a"][0]] == bytes([192, 0, 2, 10])
    assert obj["b"][endpoint_obj["a"]] == bytes([192, 0, 2, 10])
    assert len(obj["b"]) == len(set(obj["b"]))


def test_vantage_round_trip_names_everything() -> None:
    v = clean_vantage()
    data = encode_vantage(v)
    print(f"vantage: {len(data)} bytes")
    assert decode_vantage(data) == normalise(v)
    assert msgpack.unpackb(data)["n"]["s"]["n"] == HOST  # no URL to imply the host


def test_unknown_failure_text_and_odd_values_kept() -> None:
    odd = failures.unknown("ENOTSOCK")
    m = dataclasses.replace(
        CLEAN,
        control=None,
        control_failure="control_http_502",
        online=False,
        agent=Vantage(
            DNSObservation(
                system(
                    (), nameservers=("fe80::1%eth0", "2001:db8::53"), rcode="BADSIG", failure=odd
                ),
                (),
            ),
            (),
        ),
    )
    obj = measurement_to_obj(m)
    assert obj["a"]["n"]["s"]["f"] == odd
    assert obj["f"] == "control_http_502"  # not in the table: travels as text
    assert obj["o"] is False
    assert measurement_from_obj(obj) == normalise(m)


def test_title_truncated() -> None:
    long_title = HOST_SWAP.agent.endpoints[0]
    assert long_title.http_benign is not None
    m = dataclasses.replace(
        HOST_SWAP,
        agent=Vantage(
            HOST_SWAP.agent.dns,
            (
                dataclasses.replace(
                    long_title,
                    http_benign=dataclasses.replace(long_title.http_benign, title="t" * 500),
                ),
            ),
        ),
    )
    benign = decode_measurement(encode_measurement(m)).agent.endpoints[0].http_benign
    assert benign is not None
    assert benign.title == "t" * 128


def _mangled(path: tuple[str, ...], value: Any) -> bytes:
    obj = measurement_to_obj(CLEAN)
    node: Any = obj
    keys: list[Any] = [int(key) if key.isdigit() else key for key in path]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    packed: bytes = msgpack.packb(obj)
    return packed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_mangled(("v",), 2), "measurement.v: unsupported schema version 2"),
        (_mangled(("v",), True), "unsupported schema version True"),
        (_mangled(("v",), "1"), "unsupported schema version '1'"),
        (
            _mangled(("a", "n", "s", "a", "0"), b"\x01\x02\x03"),
            "agent.dns.system.addresses[0]: address of 3 bytes, expected 4 or 16",
        ),
        (
            _mangled(("a", "e", "0", "s", "f"), 999),
            "agent.endpoints[0].tls.failure: unknown code 999",
        ),
        (_mangled(("a", "e", "0", "zz"), 1), "agent.endpoints[0]: unexpected key(s) [\"'zz'\"]"),
        (
            _mangled(("a", "e", "0", "s", "l"), b"x" * 31),
            "leaf_sha256: SHA-256 of 31 bytes, expected 32",
        ),
        (_mangled(("a", "e", "0", "p"), "443"), "agent.endpoints[0].port: expected an integer"),
        (_mangled(("i",), b"x" * 15), "measurement.id: expected 16 bytes"),
        (
            _mangled(("r", "e"), {str(i): i for i in range(17)}),
            "verdict.evidence: expected a map of at most 16",
        ),
        (encode_measurement(CLEAN) + b"\x00", "not valid msgpack"),
        (b"\xc1", "not valid msgpack"),
        (b"\x93\x01\x02\x03", "measurement: expected a map"),
        (b"\x00" * (MAX_RECORD + 1), "exceeds the 65536-byte record limit"),
    ],
)
def test_malformed_records_name_the_field(data: bytes, message: str) -> None:
    with pytest.raises(WireError, match=None) as info:
        decode_measurement(data)
    assert message in str(info.value)


def test_missing_key_named() -> None:
    obj = measurement_to_obj(CLEAN)
    del obj["a"]["e"][0]["t"]["d"]
    with pytest.raises(WireError, match=r"agent\.endpoints\[0\]\.tcp\.ms: missing"):
        measurement_from_obj(obj)


def test_encode_rejects_what_decode_would() -> None:
    with pytest.raises(WireError, match="id: not a UUID"):
        encode_measurement(dataclasses.replace(CLEAN, id="not-a-uuid"))
    bad = Verdict("x", {"x": None})  # type: ignore[dict-item]
    with pytest.raises(WireError, match=r"evidence\.x: expected str"):
        encode_measurement(dataclasses.replace(CLEAN, verdict=bad))


# --- property tests -------------------------------------------------------------------------

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
    st.builds(DNSObservation, systems, st.lists(exchanges, max_size=2).map(tuple)),
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
    if version == 1 and type(version) is int:
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

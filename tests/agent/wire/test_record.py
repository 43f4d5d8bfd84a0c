"""Wire schema v1: exact round trips of the example records, their sizes, and how compact the
encoding is."""

from __future__ import annotations

import dataclasses
import uuid

import msgpack  # type: ignore[import-untyped]
import pytest

from agent.model import failures
from agent.model.measurement import Vantage
from agent.model.observations import DNSObservation
from agent.wire.record import (
    decode_measurement,
    decode_vantage,
    encode_measurement,
    encode_vantage,
    measurement_from_obj,
    measurement_to_obj,
)
from tests.agent.wire.examples import (
    CLEAN,
    EXAMPLES,
    HOST,
    HOST_SWAP,
    ID,
    INJECTED,
    TLS_FAILED,
    clean_vantage,
    normalise,
    sha,
    system,
)

# Exact sizes, so a change in the encoding shows up here and is a deliberate decision.
# Every example carries the control's view too, except clean_no_control.
SIZES = {
    "clean": 543,
    "clean_no_control": 372,
    "injected": 570,
    "tls_failed": 560,
    "host_swap": 525,
    "redirected": 816,
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_round_trip_and_sizes(name: str) -> None:
    m = EXAMPLES[name]
    data = encode_measurement(m)
    print(f"{name}: {len(data)} bytes")
    assert decode_measurement(data) == normalise(m)
    assert len(data) == SIZES[name]
    # The budget is a single URL's; a redirect adds a hop's two views (BENCHMARKS.md).
    assert len(data) < (600 if not m.hops else 600 * (1 + len(m.hops)))


def test_a_record_takes_the_lowest_version_that_holds_it() -> None:
    """Single-URL records stay version 1, which collectors before redirect chains read."""
    assert msgpack.unpackb(encode_measurement(EXAMPLES["clean"]))["v"] == 1
    hopped = msgpack.unpackb(encode_measurement(EXAMPLES["redirected"]))
    assert hopped["v"] == 2
    hop = hopped["h"][0]
    # The hop's names are those of its own URL, so they are implied rather than written.
    assert "n" not in hop["a"]["e"][0]["s"]
    assert "n" not in hop["a"]["e"][0]["h"]
    assert hop["a"]["e"][0]["h"]["u"] == "/a/b?c=d"


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

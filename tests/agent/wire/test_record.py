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
    DUAL_STACK,
    EXAMPLES,
    HOST,
    HOST_SWAP,
    ID,
    INJECTED,
    SITE6,
    TLS_FAILED,
    clean_vantage,
    normalise,
    sha,
    system,
)

# Exact sizes, so a change in the encoding shows up here and is a deliberate decision.
# Every example carries the control's view too, except clean_no_control.
SIZES = {
    "clean": 509,
    "clean_no_control": 375,
    "injected": 568,
    "tls_failed": 545,
    "host_swap": 521,
    "clean_aaaa": 583,
    "dual_stack": 775,  # two endpoints on each side
    "redirected": 772,
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_round_trip_and_sizes(name: str) -> None:
    m = EXAMPLES[name]
    data = encode_measurement(m)
    print(f"{name}: {len(data)} bytes")
    assert decode_measurement(data) == normalise(m)
    assert len(data) == SIZES[name]
    # The budget is a single URL's; a redirect adds a hop's two views (BENCHMARKS.md).
    assert len(data) < 600 or name == "dual_stack" or m.hops


def test_a_hop_writes_only_what_its_own_url_does_not_imply() -> None:
    hopped = msgpack.unpackb(encode_measurement(EXAMPLES["redirected"]))
    assert hopped["v"] == 2
    hop = hopped["h"][0]
    # The hop's names are those of its own URL, so they are implied rather than written.
    assert "n" not in hop["a"]["e"][0]["s"]
    assert "n" not in hop["a"]["e"][0]["h"]
    assert hop["a"]["e"][0]["h"]["u"] == "/a/b?c=d"


def test_aaaa_queries_and_texts_are_written_compactly() -> None:
    obj = measurement_to_obj(DUAL_STACK)
    dns = obj["a"]["n"]
    assert "y" not in dns["S"]  # the AAAA query's type and nameservers are implied
    assert "m" not in dns["S"]
    assert "y" not in dns["Q"][0]
    assert "s" not in dns["Q"][0]["r"][0]  # a reply comes from the server asked
    # A title, server or issuer is written once, in "s", and referred to by index.
    pages = [end["h"] for side in ("a", "c") for end in obj[side]["e"]]
    assert len(pages) == 4
    assert {page["i"] for page in pages} == {obj["s"].index("Example Domain")}
    assert len(obj["s"]) == len(set(obj["s"]))
    back = decode_measurement(encode_measurement(DUAL_STACK))
    assert back.agent.dns.system6 is not None
    assert back.agent.dns.system6.addresses == (SITE6,)
    assert back.agent.dns.addresses == ("192.0.2.10", SITE6)


def test_records_without_aaaa_still_decode() -> None:
    """A record made before IPv6 was measured has no "S" or "Q": no AAAA query, as then."""
    obj = measurement_to_obj(CLEAN)
    assert not {"S", "Q"} & set(obj["a"]["n"])
    back = measurement_from_obj(obj)
    assert (back.agent.dns.system6, back.agent.dns.public6) == (None, ())


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
    assert obj["v"] == 2
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

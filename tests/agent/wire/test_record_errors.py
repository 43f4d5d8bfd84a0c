"""Wire schema v1: a malformed record is refused as WireError naming the field, and the
encoder refuses what the decoder would."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from agent.model.measurement import Verdict
from agent.wire.record import (
    MAX_RECORD,
    WireError,
    decode_measurement,
    encode_measurement,
    measurement_from_obj,
    measurement_to_obj,
)
from tests.agent.wire.examples import CLEAN


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
        (_mangled(("v",), 4), "measurement.v: unsupported schema version 4"),
        (_mangled(("h",), []), "measurement.h: redirect hops need schema version 2"),
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

"""A protocol test's record (schema version 3, key ``P``): exact round trip, refused in an
older version, and the collector's compiled check agrees with the decoder on it."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from agent.model.measurement import Verdict
from agent.model.protocols import ProtocolObservation, ProtocolProbe
from agent.wire.record import WireError, decode_measurement, encode_measurement
from collector.ingest.columns import check_measurement, record_check
from tests.agent.wire.examples import CLEAN

PROBES = (
    ProtocolProbe("quic", False, False, 1200, False, 2100.0, 3, None),
    ProtocolProbe("quic", True, False, 1200, True, 1.0, 1, None),
    ProtocolProbe("openvpn-tcp", False, False, 16, False, 3.0, 1, "connection_reset"),
    ProtocolProbe("quic-benign", False, True, 1200, False, 0.0, 1, "connection_refused"),
)
OBSERVED = ProtocolObservation(
    "example.org", "example.com", "198.51.100.9", 443, 80, "192.0.2.10", PROBES
)
MEASURED = dataclasses.replace(
    CLEAN,
    control=None,
    verdict=Verdict("quic.blocked", {"trigger": "sni", "name": "example.org"}),
    protocols=OBSERVED,
)


def test_round_trip_is_exact_and_version_2() -> None:
    data = encode_measurement(MEASURED)
    assert msgpack.unpackb(data, raw=False)["v"] == 2
    decoded = decode_measurement(data)
    # The site view's float ms round to integers; the probes' ms here are whole already.
    assert decoded.protocols == OBSERVED
    assert decoded.verdict == MEASURED.verdict
    assert decode_measurement(encode_measurement(decoded)) == decoded
    failed = ProtocolObservation("a.org", "b.org", failure="x")
    again = decode_measurement(encode_measurement(dataclasses.replace(MEASURED, protocols=failed)))
    assert again.protocols == failed


def test_an_older_version_cannot_hold_it() -> None:
    obj = msgpack.unpackb(encode_measurement(MEASURED), raw=False)
    obj["v"] = 1
    with pytest.raises(WireError, match="needs schema version 2"):
        decode_measurement(msgpack.packb(obj, use_bin_type=True))
    assert record_check()(msgpack.packb(obj, use_bin_type=True)) is None


def test_the_compiled_check_takes_it_as_the_decoder_does() -> None:
    data = encode_measurement(MEASURED)
    columns = check_measurement(data)
    assert (columns.url, columns.verdict) == (MEASURED.url, "quic.blocked")
    assert record_check()(data) is not None

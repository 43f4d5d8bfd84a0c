"""A throttle test's record (schema version 3, key ``T``): exact round trip, a few hundred bytes
for twelve transfers, refused in an older version, the collector's compiled check agrees with
the decoder, the verdict is decided again from it, and its bytes count against the budget."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from agent.daemon.budget import measurement_bytes
from agent.model.observations import ThrottleObservation, Transfer
from agent.verdict import redecide
from agent.verdict.throttle import decide_throttle
from agent.wire.record import WireError, decode_measurement, encode_measurement
from collector.ingest.columns import check_measurement, record_check
from tests.agent.wire.examples import CLEAN


def transfer(up: bool, trigger: bool, moved: int, us: int) -> Transfer:
    handshake = 2.0 if up else None
    ttfb = None if up else 151.0
    return Transfer(up, trigger, 1.0, handshake, ttfb, moved, 4096, us, us + 900, 200, None)


TRANSFERS = tuple(
    transfer(up, trigger, 24_576 if trigger else 393_216, 1_150_000 if trigger else 9_000)
    for _ in range(3)
    for trigger in (True, False)
    for up in (False, True)
)
OBSERVED = ThrottleObservation(
    "sni", "example.org", "example.com", "198.51.100.10", 443, TRANSFERS, None, 1200
)
MEASURED = dataclasses.replace(
    CLEAN, control=None, verdict=decide_throttle(OBSERVED), throttle=OBSERVED
)


def test_round_trip_is_exact_compact_and_version_2() -> None:
    data = encode_measurement(MEASURED)
    assert msgpack.unpackb(data, raw=False)["v"] == 2
    decoded = decode_measurement(data)
    assert decoded.throttle == OBSERVED
    assert decoded.verdict == MEASURED.verdict
    assert decoded.verdict.verdict == "throttled"
    assert decode_measurement(encode_measurement(decoded)) == decoded
    throttle_part = len(data) - len(
        encode_measurement(dataclasses.replace(MEASURED, throttle=None))
    )
    assert throttle_part < 600, throttle_part  # some 40 bytes a transfer
    failed = ThrottleObservation("host", "example.org", "example.com", failure="farend_http_404")
    again = decode_measurement(encode_measurement(dataclasses.replace(MEASURED, throttle=failed)))
    assert again.throttle == failed


def test_an_older_version_cannot_hold_it() -> None:
    obj = msgpack.unpackb(encode_measurement(MEASURED), raw=False)
    obj["v"] = 1
    with pytest.raises(WireError, match="needs schema version 2"):
        decode_measurement(msgpack.packb(obj, use_bin_type=True))
    assert record_check()(msgpack.packb(obj, use_bin_type=True)) is None


def test_the_compiled_check_takes_it_as_the_decoder_does() -> None:
    data = encode_measurement(MEASURED)
    columns = check_measurement(data)
    assert (columns.url, columns.verdict) == (MEASURED.url, "throttled")
    assert record_check()(data) is not None
    obj = msgpack.unpackb(data, raw=False)
    obj["T"]["x"][0]["b"] = -1  # a negative byte count
    with pytest.raises(WireError):
        check_measurement(msgpack.packb(obj, use_bin_type=True))


def test_reclassification_decides_it_from_its_rounds() -> None:
    assert redecide(decode_measurement(encode_measurement(MEASURED))) == MEASURED.verdict


def test_its_transfers_count_against_the_daily_budget() -> None:
    moved = sum(t.bytes for t in TRANSFERS)
    assert moved <= measurement_bytes(MEASURED) <= moved + 12 * 4000

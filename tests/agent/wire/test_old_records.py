"""Records from before redirect chains, IPv6 and the new verdict rules (schema version 1,
recorded in the censor lab in November 2026, kept as they were in
``tests/agent/recorded/v1``) still decode, pass the collector's check, encode again as
version 2 without loss, and are decided again under the current rules: what
``netsonde-collector reclassify`` does with a collector's history."""

from __future__ import annotations

from collections.abc import Iterator

import msgpack
import pytest

from agent.model.verdicts import VERDICTS
from agent.verdict import redecide
from agent.wire.record import decode_measurement, encode_measurement
from collector.ingest.columns import check_measurement
from tests.agent.observations import RECORDED, fingerprint_set

V1 = RECORDED / "v1"


def old_records() -> Iterator[bytes]:
    for path in sorted(V1.glob("*.msgpack")):
        with path.open("rb") as handle:
            for obj in msgpack.Unpacker(handle, raw=False):
                yield msgpack.packb(obj, use_bin_type=True)


RECORDS = list(old_records())


def test_there_are_old_records_of_every_kind() -> None:
    assert len(RECORDS) >= 30
    assert {msgpack.unpackb(r)["v"] for r in RECORDS} == {1}


@pytest.mark.parametrize("data", RECORDS)
def test_an_old_record_decodes_checks_and_reclassifies(data: bytes) -> None:
    m = decode_measurement(data)
    assert m.hops == ()
    assert m.agent.dns.system6 is None  # no AAAA asked then
    # Written again, it is a version 2 record holding the same observations.
    again = encode_measurement(m)
    assert msgpack.unpackb(again)["v"] == 2
    assert decode_measurement(again) == m
    assert check_measurement(data).verdict == m.verdict.verdict
    assert redecide(m, fingerprint_set()).verdict in VERDICTS

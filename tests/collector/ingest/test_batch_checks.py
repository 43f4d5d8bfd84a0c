"""Connectivity checks in signed batches ("c"): exact round trips, heartbeat-only batches,
and refusal of too many, repeated, mistyped or out-of-time checks, on both sides."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.wire.batch import MAX_CHECKS, BatchError, encode_batch
from collector.ingest.verify import read_batch_envelope, verify_batch
from tests.agent.wire.batches import AGENT, DAY, KEY, NOW, RECORDS, body, reason, signed, verify


def test_round_trip_with_and_without_measurements() -> None:
    checks = [(NOW - 600_000, True), (NOW - 300_000, False), (NOW - 1, True)]
    batch = verify(encode_batch(AGENT, 1, RECORDS[:2], KEY, created_ms=NOW, checks=checks))
    assert (batch.checks, len(batch.records)) == (checks, 2)
    heartbeat = verify(encode_batch(AGENT, 2, [], KEY, created_ms=NOW, checks=checks[:1]))
    assert (heartbeat.checks, heartbeat.records) == (checks[:1], [])
    assert verify(encode_batch(AGENT, 3, [], KEY, created_ms=NOW)).checks == []
    full = [(NOW - i, i % 2 == 0) for i in range(MAX_CHECKS)]
    assert verify(encode_batch(AGENT, 4, [], KEY, created_ms=NOW, checks=full)).checks == full


@pytest.mark.parametrize(
    ("c", "expected"),
    [
        ({}, "schema"),
        ([NOW], "schema"),
        ([[NOW]], "schema"),
        ([[NOW, 1]], "schema"),  # online must be a bool
        ([[NOW, True, 0, 0]], "schema"),  # [ms, online] or [ms, online, bps]: no more
        ([[NOW, True, -1]], "schema"),  # a goodput is an unsigned rate
        ([[True, True]], "schema"),
        ([[-1, True]], "schema"),
        ([["now", False]], "schema"),
        ([[NOW, True], [NOW, False]], "duplicate_id"),
        ([[NOW + DAY, True]], "timestamp"),
        ([[NOW - 31 * DAY, True]], "timestamp"),
        ([[NOW - i, True] for i in range(MAX_CHECKS + 1)], "size"),
    ],
)
def test_bad_checks_are_refused(c: Any, expected: str) -> None:
    assert reason(signed(body(RECORDS[:1], c=c))) == expected


def test_the_encoder_refuses_what_the_collector_would() -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(BatchError, match="at most 2016"):
        encode_batch(AGENT, 1, [], key, checks=[(i, True) for i in range(MAX_CHECKS + 1)])
    with pytest.raises(BatchError, match="repeated"):
        encode_batch(AGENT, 1, [], key, checks=[(5, True), (5, False)])
    with pytest.raises(BatchError, match="bool"):
        encode_batch(AGENT, 1, [], key, checks=[(5, 1)])  # type: ignore[list-item]
    with pytest.raises(BatchError, match="unsigned"):
        encode_batch(AGENT, 1, [], key, checks=[(-5, True)])
    data = encode_batch(AGENT, 1, [], key, created_ms=NOW, checks=[(NOW, True)])
    assert verify_batch(read_batch_envelope(data), key.public_key(), now_ms=NOW).checks == [
        (NOW, True)
    ]

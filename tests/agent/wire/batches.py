"""Signed-batch test helpers: the lab's recorded measurements, one agent key, and bodies
built and signed by hand to reach the checks after the signature.

Shared by the batch tests (tests/agent/wire/test_batch.py) and the connectivity-check tests
(tests/collector/ingest/test_batch_checks.py); the collector's side is
``collector.ingest.verify``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.model.measurement import SiteMeasurement, new_measurement_id
from agent.wire.batch import SIGNATURE_DOMAIN, BatchError
from agent.wire.record import WireError, measurement_from_obj, measurement_to_obj
from collector.ingest.verify import Batch, read_batch_envelope, verify_batch
from tests.agent.observations import RECORDED

__all__ = [
    "AGENT",
    "DAY",
    "KEY",
    "NOW",
    "OTHER_KEY",
    "RECORDS",
    "body",
    "clones",
    "load",
    "reason",
    "signed",
    "verify",
]

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
AGENT = "agent-7f3a"
DAY = 86_400_000


def load(name: str) -> list[SiteMeasurement]:
    with (RECORDED / name).open("rb") as handle:
        return [measurement_from_obj(obj) for obj in msgpack.Unpacker(handle, raw=False)]


RECORDS = load("with-control.msgpack") + load("without-control.msgpack")
NOW = max(m.started_ms for m in RECORDS) + 60_000  # a minute after the lab recorded them


def verify(data: bytes, key: Ed25519PrivateKey = KEY, now_ms: int = NOW) -> Batch:
    return verify_batch(read_batch_envelope(data), key.public_key(), now_ms=now_ms)


def reason(data: bytes, key: Ed25519PrivateKey = KEY, now_ms: int = NOW) -> str:
    """The ``reason`` of the BatchError (always also a WireError) that refuses ``data``."""
    with pytest.raises(BatchError) as info:
        verify(data, key, now_ms)
    assert isinstance(info.value, WireError)
    return info.value.reason


def signed(body: Any, *, prefix: bytes = SIGNATURE_DOMAIN, key: Ed25519PrivateKey = KEY) -> bytes:
    """A batch with a body built by hand, validly signed, to reach the post-signature checks."""
    packed = body if isinstance(body, bytes) else msgpack.packb(body, use_bin_type=True)
    data: bytes = msgpack.packb({"b": packed, "g": key.sign(prefix + packed)}, use_bin_type=True)
    return data


def body(ms: list[SiteMeasurement], **fields: Any) -> dict[str, Any]:
    base = {"v": 1, "a": AGENT, "s": 1, "t": NOW, "m": [measurement_to_obj(m) for m in ms]}
    return {**base, **fields}


def clones(count: int) -> list[SiteMeasurement]:
    return [
        dataclasses.replace(RECORDS[i % len(RECORDS)], id=new_measurement_id(NOW - 1000))
        for i in range(count)
    ]

"""Realistic records for the storage tests and benchmark: the lab's recorded measurements,
cloned with fresh UUIDv7 ids."""

from __future__ import annotations

import dataclasses
import itertools
from functools import cache

import msgpack

from agent.model.measurement import SiteMeasurement, new_measurement_id
from agent.wire.record import measurement_from_obj
from collector.storage import IngestRecord
from tests.agent.observations import RECORDED as RECORDED_DIR

RECORDED = RECORDED_DIR / "with-control.msgpack"
AGENT = "agent-1"


@cache
def recorded() -> tuple[SiteMeasurement, ...]:
    with RECORDED.open("rb") as handle:
        return tuple(measurement_from_obj(obj) for obj in msgpack.Unpacker(handle, raw=False))


def clones(n: int, start_ms: int = 1_700_000_000_000) -> list[SiteMeasurement]:
    """``n`` measurements cycling through the recorded ones, one per second from ``start_ms``."""
    cycle = itertools.islice(itertools.cycle(recorded()), n)
    out = []
    for i, m in enumerate(cycle):
        at = start_ms + i * 1000
        out.append(dataclasses.replace(m, id=new_measurement_id(at), started_ms=at))
    return out


def batch(n: int, start_ms: int = 1_700_000_000_000) -> list[IngestRecord]:
    return [IngestRecord.from_measurement(m) for m in clones(n, start_ms)]

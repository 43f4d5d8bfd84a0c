"""Realistic records for the storage tests and benchmark: the lab's recorded measurements,
cloned with fresh UUIDv7 ids."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from functools import cache

import msgpack

from agent.model.measurement import SiteMeasurement, new_measurement_id
from agent.wire.record import encode_measurement, measurement_from_obj
from collector.ingest.columns import check_measurements
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
    """``n`` records made as ingest makes them: encoded, checked, reduced to their columns."""
    return ingest_records(clones(n, start_ms))


def ingest_records(measurements: Iterable[SiteMeasurement]) -> list[IngestRecord]:
    """The measurements' wire records as ingest stores them (``collector.ingest.accept``)."""
    return IngestRecord.from_columns(
        check_measurements(list(map(encode_measurement, measurements)))
    )

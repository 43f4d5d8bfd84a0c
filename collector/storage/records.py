"""Collector, storage: the values that go in and out of ``Storage``.

An :class:`IngestRecord` is one measurement as the store needs it: the columns that
queries filter on, extracted once at ingest, next to the msgpack record itself.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from dataclasses import dataclass, field

from agent.measurement import SiteMeasurement, Target
from agent.wire import RecordColumns, encode_measurement


class RejectedBatch(ValueError):
    """The database refused a batch (unknown agent, a value over a column's limit): nothing
    of it was stored."""


def _uuid_bytes(text: str) -> bytes:
    # The canonical form, which every record's id has, without building a UUID object (a
    # few microseconds a record at ingest); anything else is left to uuid.UUID to judge.
    if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
        with contextlib.suppress(ValueError):
            packed = bytes.fromhex(text.replace("-", ""))
            if len(packed) == 16:  # fromhex skips spaces: "1234 678-..." is not an id
                return packed
    return uuid.UUID(text).bytes


@functools.lru_cache(maxsize=65536)
def _domain(url: str) -> str:
    # Cached: parsing a URL costs more than the rest of a record's ingest, and agents
    # measure the same few thousand URLs over and over.
    return Target.parse(url).host


@dataclass(frozen=True)
class IngestRecord:
    id: str  # the measurement's UUIDv7, as text
    measured_ms: int
    domain: str
    url: str
    verdict: str
    record: bytes  # the msgpack wire record, kept as received
    key: bytes = field(init=False, repr=False, compare=False)  # the id's 16 bytes

    def __post_init__(self) -> None:
        # ValueError for an id that is not a UUID, before any database work starts.
        object.__setattr__(self, "key", _uuid_bytes(self.id))

    @classmethod
    def from_columns(cls, columns: RecordColumns, record: bytes) -> IngestRecord:
        """From a record checked by ``agent.wire.check_measurement``, stored as received."""
        return cls(
            id=columns.id,
            measured_ms=columns.started_ms,
            domain=_domain(columns.url),
            url=columns.url,
            verdict=columns.verdict,
            record=record,
        )

    @classmethod
    def from_measurement(cls, m: SiteMeasurement, record: bytes | None = None) -> IngestRecord:
        """``record`` is the wire record as received, when there is one; else it is encoded."""
        return cls(
            id=m.id,
            measured_ms=m.started_ms,
            domain=Target.parse(m.url).host,
            url=m.url,
            verdict=m.verdict.verdict,
            record=encode_measurement(m) if record is None else record,
        )


@dataclass(frozen=True)
class IngestResult:
    """Every id of the batch is in exactly one list, and stored once either way:
    ``stored`` were inserted by this call, ``duplicates`` were there already (or repeated
    within the batch)."""

    stored: list[str]
    duplicates: list[str]
    checks: int = 0  # connectivity checks of the batch now stored, new or not


@dataclass(frozen=True)
class ReclassifyResult:
    changed: int  # measurements whose verdict differs from the one stored
    total: int  # measurements looked at
    undecodable: int = 0  # records the current wire decoder rejects; their verdict is kept

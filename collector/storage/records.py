"""Collector storage: the values that go in and out of ``Storage``.

An :class:`IngestRecord` is one measurement as the store needs it: the columns that
queries filter on, extracted once at ingest, next to the msgpack record itself.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from agent.model.measurement import Target
from collector.ingest.columns import RecordColumns, uuid_text


class RejectedBatch(ValueError):
    """The database refused a batch (unknown agent, a value over a column's limit): nothing
    of it was stored."""


class ReplayedBatch(ValueError):
    """A batch numbered below the agent's last accepted one, or numbered the same but not
    that batch: a replay, of which nothing was stored."""


class AgentStatus(NamedTuple):
    """What an agent's batch says of the agent (docs/wire-format.md, "Batches"), kept with
    the agent as of its last accepted batch for the operator's agent health page; None where
    the batch does not say."""

    version: str | None = None
    spool_records: int | None = None  # waiting in its spool besides the batch's own
    spool_checks: int | None = None
    evictions: int | None = None  # the agent's running total of records dropped unsent


UNKNOWN_STATUS = AgentStatus()  # a batch that said nothing of its agent


class BatchSeq(NamedTuple):
    """A signed batch's sequence number and signature, which ingest records as the agent's
    last; the signature tells the same batch sent again from another one numbered alike."""

    seq: int
    signature: bytes
    # The signed body, to be stored with the batch's records (``batches``, migration 0011)
    # so that each can be checked on its own; None: not stored (no measurements in it).
    body: bytes | None = None
    # Recorded on the agent with the number, in the same write; None: nothing said.
    status: AgentStatus | None = None


@functools.lru_cache(maxsize=65536)
def domain_of(url: str) -> str:
    """The URL's host, as stored and queried. Cached: parsing a URL costs more than the
    rest of a record's ingest, and agents measure the same few thousand URLs over and over."""
    return Target.parse(url).host


class IngestRecord(NamedTuple):
    """A tuple, ordered by id: ingest makes one per record, tens of thousands a second."""

    key: bytes  # the measurement's UUIDv7, its 16 bytes
    measured_ms: int
    domain: str
    url: str
    verdict: str
    record: bytes  # the msgpack wire record, kept as received
    # Its place in its signed batch's measurements (``batches``, migration 0011).
    batch_index: int | None = None

    @property
    def id(self) -> str:
        """The id as text, as the API shows it."""
        return uuid_text(self.key)

    @classmethod
    def make(
        cls, id: str, measured_ms: int, domain: str, url: str, verdict: str, record: bytes
    ) -> IngestRecord:
        """From the id as text; ValueError if it is not a UUID."""
        return cls(uuid.UUID(id).bytes, measured_ms, domain, url, verdict, record)

    @classmethod
    def from_columns(cls, batch: Iterable[RecordColumns]) -> list[IngestRecord]:
        """From records checked by ``collector.ingest.columns``, stored as received. ValueError if
        a URL has no host the store can key it by. A batch at a time: one loop, no call per
        record."""
        return [
            cls(key, started_ms, domain_of(url), url, verdict, record, index)
            for index, (key, started_ms, url, verdict, record) in enumerate(batch)
        ]


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

"""Collector storage: the read side behind the JSON query API, as a part of Storage.

The blocking matrix has its own module (``collector.storage.blocking``). ``timeline``
reads only the hourly rollups (never ``measurements``). ``measurements_page`` pages the
raw records by keyset on (measured_ms, id), newest first, so a page costs the same however
deep it is and rows inserted meanwhile neither repeat nor shift a walk; it stops between
chunks of rows once its caller has gone (:class:`QueryCancelled`). SQLAlchemy Core only:
the same statements run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import struct
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Connection, Engine

from collector.outages import Check, Outage, find_outages
from collector.storage.blocking import BlockingQueries
from collector.storage.engine import READ_ONLY
from collector.storage.idmap import CellKey, IdMap
from collector.storage.records import UNKNOWN_STATUS, AgentStatus
from collector.storage.schema import (
    DAY_MS,
    HOUR_MS,
    UNKNOWN_ASN,
    agents,
    connectivity,
    measurements,
    rollups,
)
from collector.storage.windows import rollup_window

MAX_PAGE = 1000
_CURSOR = struct.Struct(">q16s")  # measured_ms, then the id's 16 bytes
# Rows fetched between two looks at the cancel flag: each costs microseconds, the records
# they carry up to 64 KiB.
_CHUNK_ROWS = 100


class BadCursor(ValueError):
    """A pagination cursor this collector did not hand out (or a mangled one)."""


class QueryCancelled(Exception):
    """The request a query was for has gone: its work was dropped half-way."""


def stop_if(cancelled: threading.Event | None) -> None:
    """Raises :class:`QueryCancelled` once ``cancelled`` is set: worker threads cannot be
    interrupted, so long loops on them look here between steps."""
    if cancelled is not None and cancelled.is_set():
        raise QueryCancelled("the client went away")


@dataclass(frozen=True)
class MeasurementFilter:
    domain: str | None = None
    asn: int | None = None  # 0: measurements whose network was unknown
    cc: str | None = None
    verdict: str | None = None
    since_ms: int | None = None  # inclusive
    until_ms: int | None = None  # exclusive


@dataclass(frozen=True)
class StoredMeasurement:
    id: str  # the UUID as text, as on the wire
    measured_ms: int
    received_ms: int
    agent_id: str
    asn: int | None
    cc: str | None
    verdict: str
    record: bytes = field(repr=False)


@dataclass(frozen=True)
class AgentSummary:
    id: str
    name: str
    created_ms: int
    revoked_ms: int | None
    last_seen_ms: int | None  # the latest upload that stored a measurement
    key_fingerprint: str  # SHA-256 of the public key, hex: identifies it, reveals nothing
    # The last accepted batch's receive time (heartbeat-only ones too) and what it said of
    # the agent; None where nothing was said (docs/design/009-dashboard.md, "Agent health").
    last_batch_ms: int | None = None
    status: AgentStatus = UNKNOWN_STATUS


def encode_cursor(measured_ms: int, key: bytes) -> str:
    return base64.urlsafe_b64encode(_CURSOR.pack(measured_ms, key)).decode("ascii")


def decode_cursor(cursor: str) -> tuple[int, bytes]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii"))
        measured_ms, key = _CURSOR.unpack(raw)
    except (binascii.Error, struct.error, UnicodeEncodeError):
        raise BadCursor("the cursor is not one this API returned") from None
    return int(measured_ms), bytes(key)


# Checks read before an outage query's window: 72 at the default 5-minute interval.
_OUTAGE_CONTEXT_MS = 6 * HOUR_MS


class QueryStore(BlockingQueries):
    """The query methods of :class:`collector.storage.Storage`."""

    engine: Engine
    cells: IdMap[CellKey]
    verdicts: IdMap[str]

    @contextmanager
    def _query(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                yield conn

    def timeline(
        self,
        domain: str | None = None,
        asn: int | None = None,
        cc: str | None = None,
        bucket_ms: int = HOUR_MS,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[tuple[int, dict[str, int]]]:
        """Verdict counts per bucket (an hour or a UTC day), oldest first; empty buckets
        are left out."""
        if bucket_ms not in (HOUR_MS, DAY_MS):
            raise ValueError(f"bucket_ms must be an hour or a day, not {bucket_ms}")
        r = rollups.c
        start = (r.hour_ms // bucket_ms) * bucket_ms
        query = (
            select(start.label("bucket"), r.verdict, func.sum(r.count))
            .where(*rollup_window(cc, asn, domain, since_ms, until_ms))
            .group_by(start, r.verdict)
            .order_by(start)
        )
        buckets: dict[int, dict[str, int]] = {}
        with self._query() as conn:
            rows = conn.execute(query).all()
            names = self.verdicts.names(conn, {row[1] for row in rows})
        for bucket, verdict, n in rows:
            buckets.setdefault(int(bucket), {})[names[verdict]] = int(n)
        # Each bucket's verdicts by name, as the matrix lists them.
        return [(bucket, dict(sorted(counts.items()))) for bucket, counts in buckets.items()]

    def measurements_page(
        self,
        where: MeasurementFilter,
        limit: int = 100,
        cursor: str | None = None,
        cancelled: threading.Event | None = None,
    ) -> tuple[list[StoredMeasurement], str | None]:
        """Up to ``limit`` records newest first, and the cursor of the next page (None at
        the end). :class:`BadCursor` for a cursor that does not decode;
        :class:`QueryCancelled` once ``cancelled`` is set."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1..{MAX_PAGE}")
        m = measurements.c
        conditions: list[ColumnElement[bool]] = []
        if where.domain is not None:
            conditions.append(m.domain == where.domain)
        if where.asn is not None:
            conditions.append(m.asn.is_(None) if where.asn == UNKNOWN_ASN else m.asn == where.asn)
        if where.cc is not None:
            conditions.append(m.cc == where.cc)
        if where.verdict is not None:
            conditions.append(m.verdict == where.verdict)
        if where.since_ms is not None:
            conditions.append(m.measured_ms >= where.since_ms)
        if where.until_ms is not None:
            conditions.append(m.measured_ms < where.until_ms)
        if cursor is not None:
            after_ms, after_key = decode_cursor(cursor)
            # Spelled out rather than as a row-value comparison, which older SQLite lacks.
            conditions.append(
                or_(m.measured_ms < after_ms, and_(m.measured_ms == after_ms, m.id < after_key))
            )
        query = (
            select(m.id, m.measured_ms, m.received_ms, m.agent_id, m.asn, m.cc, m.verdict, m.record)
            .where(and_(true(), *conditions))
            .order_by(m.measured_ms.desc(), m.id.desc())
            .limit(limit + 1)  # one more says whether there is a next page
        )
        rows: list[Any] = []
        with self._query() as conn:
            for chunk in conn.execute(query).partitions(_CHUNK_ROWS):
                stop_if(cancelled)
                rows += chunk
        page = [_stored(row) for row in rows[:limit]]
        more = len(rows) > limit
        last = rows[limit - 1] if more else None
        next_cursor = None if last is None else encode_cursor(int(last.measured_ms), bytes(last.id))
        return page, next_cursor

    def agent_summaries(self) -> list[AgentSummary]:
        """Every agent, revoked ones too, by id."""
        a = agents.c
        # A correlated max over the (agent_id, received_ms) index: one seek per agent.
        last_seen = (
            select(func.max(measurements.c.received_ms))
            .where(measurements.c.agent_id == a.id)
            .scalar_subquery()
        )
        query = select(
            a.id, a.name, a.public_key, a.created_ms, a.revoked_ms, last_seen.label("last_seen"),
            a.last_batch_ms, *(a[name] for name in AgentStatus._fields),
        ).order_by(a.id)  # fmt: skip
        with self._query() as conn:
            return [_summary(row) for row in conn.execute(query)]

    async def timeline_async(self, **filters: Any) -> list[tuple[int, dict[str, int]]]:
        return await asyncio.to_thread(lambda: self.timeline(**filters))

    async def agent_summaries_async(self) -> list[AgentSummary]:
        return await asyncio.to_thread(self.agent_summaries)

    def connectivity_checks(
        self,
        cc: str | None = None,
        asn: int | None = None,
        agent: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[Check]:
        """The checks ``collector.outages`` needs for outages overlapping [since, until), by
        agent then time: those in the window, and per agent the last online check before it
        (so an outage already going at ``since`` starts where it began) and the first check
        and first online check at or after ``until`` (so one going on then gets its end)."""
        c = connectivity.c
        where = _check_filters(cc, asn, agent)
        per_agent = [agents.c.id == agent] if agent is not None else []

        def edge(*condition: ColumnElement[bool], newest: bool = False) -> Any:
            # One seek per agent down the (agent_id, ms) primary key.
            order = c.ms.desc() if newest else c.ms
            return (
                select(c.ms)
                .where(c.agent_id == agents.c.id, *where, *condition)
                .order_by(order)
                .limit(1)
                .scalar_subquery()
            )

        columns = (c.agent_id, c.ms, c.online, c.asn, c.cc)
        with self._query() as conn:
            lower = since_ms
            if since_ms is not None:
                before = select(edge(c.online.is_(True), c.ms < since_ms, newest=True))
                before = before.select_from(agents).where(*per_agent)
                found = [ms for ms in conn.execute(before).scalars() if ms is not None]
                # Some hours more, so an agent's rhythm (the median spacing that tells a
                # silence from jitter) is known even for a short window.
                lower = min([since_ms, *found]) - _OUTAGE_CONTEXT_MS
            window = list(where)
            if lower is not None:
                window.append(c.ms >= lower)
            if until_ms is not None:
                window.append(c.ms < until_ms)
            rows = list(conn.execute(select(*columns).where(and_(true(), *window))))
            if until_ms is not None:
                for condition in ((), (c.online.is_(True),)):
                    first = select(agents.c.id, edge(c.ms >= until_ms, *condition).label("ms"))
                    after = first.where(*per_agent).subquery()
                    rows += conn.execute(
                        select(*columns)
                        .join(after, and_(c.agent_id == after.c.id, c.ms == after.c.ms))
                        .where(*where)
                    ).all()
        return _checks(rows)

    async def outages_async(
        self, *, now_ms: int, since_ms: int | None = None, until_ms: int | None = None,
        **filters: Any,
    ) -> list[Outage]:  # fmt: skip
        """The outage events (``collector.outages``), newest first, off the event loop."""

        def run() -> list[Outage]:
            checks = self.connectivity_checks(since_ms=since_ms, until_ms=until_ms, **filters)
            return find_outages(checks, now_ms=now_ms, since_ms=since_ms, until_ms=until_ms)

        return await asyncio.to_thread(run)


def _check_filters(cc: str | None, asn: int | None, agent: str | None) -> list[ColumnElement[bool]]:
    """The connectivity checks of the filters' agent and network (none: every check)."""
    c = connectivity.c
    where: list[ColumnElement[bool]] = []
    if agent is not None:
        where.append(c.agent_id == agent)
    if asn is not None:
        where.append(c.asn.is_(None) if asn == UNKNOWN_ASN else c.asn == asn)
    if cc is not None:
        where.append(c.cc == cc)
    return where


def _checks(rows: list[Any]) -> list[Check]:
    """The rows as checks, each once, by agent then time."""
    unique = {(row.agent_id, int(row.ms)): row for row in rows}
    return [
        Check(
            agent_id=row.agent_id,
            ms=int(row.ms),
            online=bool(row.online),
            asn=None if row.asn is None else int(row.asn),
            cc=row.cc,
        )
        for _, row in sorted(unique.items())
    ]


def _stored(row: Any) -> StoredMeasurement:
    return StoredMeasurement(
        id=str(uuid.UUID(bytes=bytes(row.id))),
        measured_ms=int(row.measured_ms),
        received_ms=int(row.received_ms),
        agent_id=row.agent_id,
        asn=None if row.asn is None else int(row.asn),
        cc=row.cc,
        verdict=row.verdict,
        record=bytes(row.record),
    )


def _summary(row: Any) -> AgentSummary:
    return AgentSummary(
        id=row.id,
        name=row.name,
        created_ms=int(row.created_ms),
        revoked_ms=None if row.revoked_ms is None else int(row.revoked_ms),
        last_seen_ms=None if row.last_seen is None else int(row.last_seen),
        key_fingerprint=hashlib.sha256(bytes(row.public_key)).hexdigest(),
        last_batch_ms=None if row.last_batch_ms is None else int(row.last_batch_ms),
        status=AgentStatus(row.version, *(_int_or_none(getattr(row, c)) for c in _STATUS_COUNTS)),
    )


_STATUS_COUNTS = ("spool_records", "spool_checks", "evictions")


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)

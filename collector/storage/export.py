"""Collector storage: the export's read side, stored measurements in pages, oldest first.

An export walks every measurement of a period (``collector.export``), up to millions, in
bounded memory: one page at a time, each its own short read transaction, keyset-paged on
(measured_ms, id) so a page costs the same however deep it is, and a measurement inserted
meanwhile neither repeats nor shifts the walk. SQLite is told to walk the ``measured_ms``
index: asked for a domain, it would rather read the domain's index and sort all of that
domain's rows for every page, which grows with the square of a busy domain's rows, where
the time index's walk reads each row of the period at most once over the whole export.
SQLAlchemy Core only: the same statement runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.engine import Engine

from collector.storage.engine import READ_ONLY
from collector.storage.queries import StoredMeasurement, stop_if
from collector.storage.schema import UNKNOWN_ASN, measurements

__all__ = ["MAX_EXPORT_PAGE", "ExportFilter", "export_page"]

MAX_EXPORT_PAGE = 5000
# Rows fetched between two looks at the cancel flag.
_CHUNK_ROWS = 200
_TIME_INDEX = "ix_measurements_measured_ms"


@dataclass(frozen=True)
class ExportFilter:
    """Measurements of ``domain`` (None: all) on ``asns`` (empty: all; 0 is an unknown
    network) measured at ``since_ms`` <= measured_ms < ``until_ms``."""

    domain: str | None
    asns: tuple[int, ...]
    since_ms: int
    until_ms: int


Cursor = tuple[int, bytes]  # the last row's measured_ms and id bytes


def _conditions(where: ExportFilter, after: Cursor | None) -> list[ColumnElement[bool]]:
    m = measurements.c
    conditions = [m.measured_ms >= where.since_ms, m.measured_ms < where.until_ms]
    if where.domain is not None:
        conditions.append(m.domain == where.domain)
    if where.asns:
        known = [asn for asn in where.asns if asn != UNKNOWN_ASN]
        networks: list[ColumnElement[bool]] = [m.asn.in_(known)] if known else []
        if UNKNOWN_ASN in where.asns:
            networks.append(m.asn.is_(None))
        conditions.append(or_(*networks))
    if after is not None:
        after_ms, after_key = after
        # Spelled out rather than as a row-value comparison, which older SQLite lacks.
        conditions.append(
            or_(m.measured_ms > after_ms, and_(m.measured_ms == after_ms, m.id > after_key))
        )
    return conditions


def export_page(
    engine: Engine,
    where: ExportFilter,
    after: Cursor | None,
    limit: int,
    cancelled: threading.Event | None = None,
) -> tuple[list[StoredMeasurement], Cursor | None]:
    """Up to ``limit`` measurements after ``after``, oldest first, and the cursor to pass
    next (None: this was the last page). :class:`QueryCancelled` once ``cancelled`` is set."""
    if not 1 <= limit <= MAX_EXPORT_PAGE:
        raise ValueError(f"limit must be 1..{MAX_EXPORT_PAGE}")
    m = measurements.c
    query = (
        select(m.id, m.measured_ms, m.received_ms, m.agent_id, m.asn, m.cc, m.verdict, m.record)
        .where(*_conditions(where, after))
        .order_by(m.measured_ms, m.id)
        .limit(limit)
        .with_hint(measurements, f"INDEXED BY {_TIME_INDEX}", "sqlite")
    )
    rows: list[Any] = []
    with engine.connect() as conn:
        conn = conn.execution_options(**{READ_ONLY: True})
        with conn.begin():
            for chunk in conn.execute(query).partitions(_CHUNK_ROWS):
                stop_if(cancelled)
                rows += chunk
    page = _stored(rows)
    cursor = (int(rows[-1].measured_ms), bytes(rows[-1].id)) if len(rows) == limit else None
    return page, cursor


def _stored(rows: Sequence[Any]) -> list[StoredMeasurement]:
    return [
        StoredMeasurement(
            id=str(uuid.UUID(bytes=bytes(row.id))),
            measured_ms=int(row.measured_ms),
            received_ms=int(row.received_ms),
            agent_id=row.agent_id,
            asn=None if row.asn is None else int(row.asn),
            cc=row.cc,
            verdict=row.verdict,
            record=bytes(row.record),
        )
        for row in rows
    ]

"""Collector storage: the agents' goodput samples, as a part of :class:`collector.storage.Storage`.

Written after a batch's records and checks (``collector.ingest.accept``), in a transaction of
its own: a sample stored twice keeps its first row, so a batch sent again, or one whose
records were refused and whose checks are resent, adds nothing. Read for the degraded
periods of ``/api/v1/outages`` (``collector.degradation``): the window's samples, and the
baseline's week before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, select, true
from sqlalchemy.engine import Engine

from collector.degradation import BASELINE_MS, Degradation, Sample, find_degradations
from collector.storage.engine import READ_ONLY
from collector.storage.schema import UNKNOWN_ASN, goodput

__all__ = ["GoodputStore"]

# Past ``until``, how far to look for the normal sample that ends a period still going then.
_END_CONTEXT_MS = 86_400_000


class GoodputStore:
    """The goodput methods of :class:`collector.storage.Storage`."""

    engine: Engine
    _insert: Callable[[Table], Any]
    _writer: AbstractContextManager[Any]

    def store_goodput(
        self,
        agent_id: str,
        samples: Sequence[tuple[int, int]],
        asn: int | None,
        cc: str | None,
        received_ms: int,
    ) -> None:
        """Stores the samples (check ms, bits per second) not stored yet."""
        if not samples:
            return
        rows = [
            {"agent_id": agent_id, "ms": ms, "bps": bps, "asn": asn, "cc": cc,
             "received_ms": received_ms}
            for ms, bps in sorted(dict(samples).items())
        ]  # fmt: skip
        with self._writer, self.engine.begin() as conn:
            conn.execute(self._insert(goodput).on_conflict_do_nothing(), rows)

    def goodput_samples(
        self,
        cc: str | None = None,
        asn: int | None = None,
        agent: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[Sample]:
        """The samples degraded periods overlapping [since, until) are judged from."""
        g = goodput.c
        where: list[ColumnElement[bool]] = []
        if agent is not None:
            where.append(g.agent_id == agent)
        if asn is not None:
            where.append(g.asn.is_(None) if asn == UNKNOWN_ASN else g.asn == asn)
        if cc is not None:
            where.append(g.cc == cc)
        if since_ms is not None:
            where.append(g.ms >= since_ms - BASELINE_MS)
        if until_ms is not None:
            where.append(g.ms < until_ms + _END_CONTEXT_MS)
        query = select(g.agent_id, g.ms, g.bps, g.asn, g.cc).where(and_(true(), *where))
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{READ_ONLY: True})
            rows = conn.execute(query.order_by(g.agent_id, g.ms)).all()
        return list(_samples(rows))

    async def degradations_async(
        self, *, since_ms: int | None = None, until_ms: int | None = None, **filters: Any
    ) -> list[Degradation]:
        """The degraded periods (``collector.degradation``), newest first, off the loop."""

        def run() -> list[Degradation]:
            samples = self.goodput_samples(since_ms=since_ms, until_ms=until_ms, **filters)
            return find_degradations(samples, since_ms=since_ms, until_ms=until_ms)

        return await asyncio.to_thread(run)


def _samples(rows: Sequence[Any]) -> Iterator[Sample]:
    for row in rows:
        asn = None if row.asn is None else int(row.asn)
        yield Sample(row.agent_id, int(row.ms), int(row.bps), asn, row.cc)

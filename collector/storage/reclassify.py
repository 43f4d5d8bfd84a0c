"""Collector storage: reclassification, which recomputes every stored verdict with the
current ``agent.verdict`` and rebuilds the rollups from the measurements.

One transaction: readers see the old verdicts and rollups or the new ones, never a mix.
On PostgreSQL the rebuild locks the rollup tables against ingest's upserts (not against
readers) until it commits. docs/design/003-storage.md, "Reclassification".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, and_, bindparam, case, delete, func, select, text, true, update
from sqlalchemy.engine import Connection, Engine

from agent.model.measurement import SiteMeasurement
from agent.wire.record import WireError, decode_measurement
from collector.storage.records import ReclassifyResult
from collector.storage.schema import (
    DAY_MS,
    HOUR_MS,
    UNKNOWN_ASN,
    UNKNOWN_CC,
    WEEK_MS,
    WEEK_OFFSET_MS,
    WEEKDAYS,
    cells,
    days_count,
    measurements,
    rollup_totals,
    rollups,
    verdicts,
    weekly_rollups,
)

log = logging.getLogger("netsonde.collector.storage")

RECLASSIFY_CHUNK = 1000
_ROLLUP_DIMS = ("hour_ms", "cell", "verdict")
_WEEKLY_DIMS = ("week_ms", "cell", "verdict")
_TOTAL_DIMS = ("cell", "verdict")


class Reclassification:
    """``reclassify``, a part of :class:`collector.storage.Storage`."""

    engine: Engine
    backend: str
    _insert: Callable[[Table], Any]

    def reclassify(self, decide_fn: Callable[[SiteMeasurement], str]) -> ReclassifyResult:
        """Recomputes every verdict from the stored records, then rebuilds the rollups.

        One transaction, so readers see the old verdicts and rollups or the new ones,
        never a mix; ingest goes on meanwhile and blocks only during the rebuild.
        """
        changed = total = undecodable = 0
        with self.engine.begin() as conn:
            last = b""
            while True:
                chunk = conn.execute(
                    select(measurements.c.id, measurements.c.verdict, measurements.c.record)
                    .where(measurements.c.id > last)
                    .order_by(measurements.c.id)
                    .limit(RECLASSIFY_CHUNK)
                ).all()
                if not chunk:
                    break
                updates = []
                for key, verdict, record in chunk:
                    try:
                        m = decode_measurement(record)
                    except WireError as exc:
                        undecodable += 1
                        log.warning("reclassify: keeping the verdict of %s: %s", key.hex(), exc)
                        continue
                    new = decide_fn(m)
                    if new != verdict:
                        updates.append({"key": key, "new_verdict": new})
                if updates:
                    conn.execute(
                        update(measurements)
                        .where(measurements.c.id == bindparam("key"))
                        .values(verdict=bindparam("new_verdict")),
                        updates,
                    )
                total += len(chunk)
                changed += len(updates)
                last = chunk[-1].id
            self._rebuild_rollups(conn)
        return ReclassifyResult(changed=changed, total=total, undecodable=undecodable)

    def _rebuild_rollups(self, conn: Connection) -> None:
        if self.backend == "postgresql":
            # Blocks ingest's rollup upserts (not readers) until commit. Ingests that
            # committed earlier are in the rebuild; later ones add to the rebuilt rows.
            # Listed in ingest's upsert order, so the two never wait on each other in a cycle.
            conn.execute(
                text("LOCK TABLE rollups, weekly_rollups, rollup_totals IN EXCLUSIVE MODE")
            )
        m = measurements.c
        c = cells.c
        hour = (m.measured_ms // HOUR_MS) * HOUR_MS
        asn = func.coalesce(m.asn, UNKNOWN_ASN)
        cc = func.coalesce(m.cc, UNKNOWN_CC)
        v = verdicts.c
        # Cells for every (domain, network) measured, ids for every verdict; those there
        # already keep their ids. WHERE: else SQLite reads ON CONFLICT as a join's ON.
        conn.execute(
            self._insert(cells)
            .from_select(
                ["domain", "asn", "cc"], select(m.domain, asn, cc).where(true()).distinct()
            )
            .on_conflict_do_nothing()
        )
        conn.execute(
            self._insert(verdicts)
            .from_select(["name"], select(m.verdict).where(true()).distinct())
            .on_conflict_do_nothing()
        )
        conn.execute(delete(rollups))
        on_cell = and_(c.domain == m.domain, c.asn == asn, c.cc == cc)
        conn.execute(
            rollups.insert().from_select(
                [*_ROLLUP_DIMS, "count"],
                select(hour, c.id, v.id, func.count())
                .select_from(measurements.join(cells, on_cell).join(verdicts, v.name == m.verdict))
                .group_by(hour, c.id, v.id),
            )
        )
        _rebuild_coarser(conn)


def _rebuild_coarser(conn: Connection) -> None:
    """The coarser tables from the hourly rows just rebuilt, in this transaction: the same
    counts, from a table smaller than measurements."""
    # Non-negative before the division, so "//" floors alike on both backends.
    r = rollups.c
    shifted = r.hour_ms + WEEK_OFFSET_MS
    week = (shifted // WEEK_MS) * WEEK_MS - WEEK_OFFSET_MS
    day = (shifted % WEEK_MS) // DAY_MS
    conn.execute(delete(weekly_rollups))
    conn.execute(
        weekly_rollups.insert().from_select(
            [*_WEEKLY_DIMS, *WEEKDAYS],
            select(
                week,
                r.cell,
                r.verdict,
                *(func.sum(case((day == i, r.count), else_=0)) for i in range(len(WEEKDAYS))),
            ).group_by(week, r.cell, r.verdict),
        )
    )
    w = weekly_rollups.c
    conn.execute(delete(rollup_totals))
    conn.execute(
        rollup_totals.insert().from_select(
            [*_TOTAL_DIMS, "count"],
            select(w.cell, w.verdict, func.sum(days_count(range(len(WEEKDAYS))))).group_by(
                w.cell, w.verdict
            ),
        )
    )

"""Collector storage: the reads only the dashboard makes, as functions of a :class:`Storage`.

One measurement by its id (the measurement detail page), and each agent's latest
connectivity check (how many agents are online, and the operator's agent health page).
The matrix, timelines and outages are the query API's own reads (``collector.storage.queries``
and ``collector.storage.blocking``). Blocking: the dashboard calls these on a worker thread.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from collector.storage.engine import READ_ONLY
from collector.storage.queries import StoredMeasurement
from collector.storage.schema import agents, connectivity, measurements

if TYPE_CHECKING:
    from collector.storage.store import Storage

__all__ = ["LatestCheck", "latest_checks", "measurement_by_id"]


@dataclass(frozen=True)
class LatestCheck:
    agent_id: str
    ms: int
    online: bool
    asn: int | None
    cc: str | None


def measurement_by_id(storage: Storage, measurement_id: str) -> StoredMeasurement | None:
    """The stored measurement with this UUID (as text), None if there is none; ValueError if
    ``measurement_id`` is not a UUID."""
    key = uuid.UUID(measurement_id).bytes
    m = measurements.c
    query = select(
        m.id, m.measured_ms, m.received_ms, m.agent_id, m.asn, m.cc, m.verdict, m.record
    ).where(m.id == key)
    with storage.engine.connect() as conn:
        row = conn.execution_options(**{READ_ONLY: True}).execute(query).first()
    if row is None:
        return None
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


def latest_checks(storage: Storage) -> list[LatestCheck]:
    """Each agent's newest connectivity check, by agent id; agents with none are left out.
    Each column a correlated subquery, one seek each down the (agent_id, ms) primary key: a
    join on the newest time made SQLite scan the whole table."""
    c = connectivity.c

    def newest(column: Any) -> Any:
        return (
            select(column)
            .where(c.agent_id == agents.c.id)
            .order_by(c.ms.desc())
            .limit(1)
            .scalar_subquery()
            .correlate(agents)
        )

    query = select(
        agents.c.id, newest(c.ms), newest(c.online), newest(c.asn), newest(c.cc)
    ).order_by(agents.c.id)
    with storage.engine.connect() as conn:
        rows = conn.execution_options(**{READ_ONLY: True}).execute(query).all()
    return [
        LatestCheck(
            agent_id=agent_id,
            ms=int(ms),
            online=bool(online),
            asn=None if asn is None else int(asn),
            cc=cc,
        )
        for agent_id, ms, online, asn, cc in rows
        if ms is not None
    ]

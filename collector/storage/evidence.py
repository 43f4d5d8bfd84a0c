"""Collector storage: the read side of evidence bundles (``collector.evidence.bundle``).

Every measurement of a query with what proves it: its signed batch (``batches``, migration
0011) and place in it, or its record alone when it was stored before batches were kept;
the batches' bodies and signatures; the agents' public keys and enrolment times. All read
in one transaction, so a bundle is one consistent snapshot, and the measurements streamed,
so a large query never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection

from collector.storage.engine import READ_ONLY
from collector.storage.schema import agents, batches, measurements

if TYPE_CHECKING:
    from collector.storage.store import Storage

__all__ = ["AgentKey", "EvidenceRow", "agent_keys", "evidence_rows", "signed_batch", "snapshot"]

_STREAM_ROWS = 500


class EvidenceRow(NamedTuple):
    key: bytes  # the measurement id's 16 bytes
    measured_ms: int
    received_ms: int
    agent_id: str
    asn: int | None
    cc: str | None
    domain: str
    verdict: str  # the collector's, reclassified if the rules changed since
    batch_seq: int | None  # None: stored before migration 0011, no signed batch kept
    batch_index: int | None
    record: bytes  # as stored: the agent's verdict is read from it


class AgentKey(NamedTuple):
    public_key: bytes
    created_ms: int
    revoked_ms: int | None


@contextmanager
def snapshot(storage: Storage) -> Iterator[Connection]:
    """One read transaction: on PostgreSQL REPEATABLE READ, so every statement of a bundle
    sees the same data (SQLite's read transaction is a snapshot already)."""
    with storage.engine.connect() as conn:
        options: dict[str, object] = {READ_ONLY: True}
        if storage.backend == "postgresql":
            options["isolation_level"] = "REPEATABLE READ"
        conn = conn.execution_options(**options)
        with conn.begin():
            yield conn


def evidence_rows(
    conn: Connection, domain: str | None, asns: Iterable[int], since_ms: int, until_ms: int
) -> Iterator[EvidenceRow]:
    """The measurements of ``domain`` (None: all) on ``asns`` (empty: all) measured in
    [since_ms, until_ms), by time then id, streamed."""
    m = measurements.c
    query = (
        select(
            m.id, m.measured_ms, m.received_ms, m.agent_id, m.asn, m.cc, m.domain, m.verdict,
            m.batch_seq, m.batch_index,
            m.record,
        )
        .where(m.measured_ms >= since_ms, m.measured_ms < until_ms)
        .order_by(m.measured_ms, m.id)
    )  # fmt: skip
    if domain is not None:
        query = query.where(m.domain == domain)
    networks = list(asns)
    if networks:
        # AS 0 is an unknown network, stored as NULL, as the rollups and the query API read it.
        known = m.asn.in_([n for n in networks if n != 0])
        query = query.where(or_(known, m.asn.is_(None)) if 0 in networks else known)
    result = conn.execution_options(stream_results=True, yield_per=_STREAM_ROWS).execute(query)
    for row in result:
        yield EvidenceRow(*row)


def signed_batch(conn: Connection, agent_id: str, seq: int) -> tuple[bytes, bytes]:
    """A kept batch's signed body and signature; LookupError if it is not kept."""
    b = batches.c
    row = conn.execute(
        select(b.body, b.signature).where(b.agent_id == agent_id, b.seq == seq)
    ).first()
    if row is None:
        raise LookupError(f"batch {seq} of agent {agent_id!r} is not stored")
    return bytes(row[0]), bytes(row[1])


def agent_keys(conn: Connection, ids: Iterable[str]) -> dict[str, AgentKey]:
    """The public key and enrolment (and revocation) time of each agent of ``ids``."""
    wanted = sorted(set(ids))
    out: dict[str, AgentKey] = {}
    a = agents.c
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        query = select(a.id, a.public_key, a.created_ms, a.revoked_ms).where(a.id.in_(chunk))
        for agent_id, key, created, revoked in conn.execute(query):
            out[agent_id] = AgentKey(bytes(key), created, revoked)
    return out

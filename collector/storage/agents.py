"""Collector storage: agents and their enrolment, as a part of :class:`Storage`.

An operator creates a one-time, expiring token (``netsonde-collector enroll``); the agent
redeems it once with its Ed25519 public key and gets an agent id. Only the token's SHA-256
is stored. Redeeming is one transaction whose final ``UPDATE ... WHERE used_ms IS NULL``
is the guard, so two agents racing with one token cannot both get an id.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, bindparam, or_, select, update
from sqlalchemy.engine import Dialect, Engine

from collector.storage.engine import READ_ONLY
from collector.storage.records import BatchSeq
from collector.storage.schema import agents, enroll_tokens

AGENT_ID_PREFIX = "ag-"
# Where a signed batch stands to the last one accepted from its agent (docs/wire-format.md,
# "Sequence numbers"): store it, answer it as that batch again, or refuse it as a replay.
NEWER, SAME, OLDER = "newer", "same", "older"
# A fresh id colliding with an existing one is a 48-bit coincidence; retried, never hoped.
_ID_ATTEMPTS = 5


class EnrollError(ValueError):
    """A token that cannot be redeemed; the subclass says why."""


class UnknownToken(EnrollError):
    """No such token was ever issued (or it was mistyped)."""


class ExpiredToken(EnrollError):
    """The token was issued but its time ran out before it was redeemed."""


class UsedToken(EnrollError):
    """The token was redeemed already: each token enrols exactly one agent."""


@dataclass(frozen=True)
class AgentRow:
    id: str
    name: str
    public_key: bytes
    created_ms: int
    revoked_ms: int | None
    last_seq: int
    # The signature of the batch numbered last_seq; None until a batch was accepted.
    last_signature: bytes | None = None

    def batch_order(self, batch: BatchSeq) -> str:
        """NEWER, SAME or OLDER; the rule :func:`accepts` applies in the write itself."""
        if self.last_signature is None or batch.seq > self.last_seq:
            return NEWER
        if batch.seq == self.last_seq and batch.signature == self.last_signature:
            return SAME
        return OLDER


def accepts(batch: BatchSeq) -> ColumnElement[bool]:
    """The agents row that may take ``batch`` as its last: none accepted yet, the last one
    numbered lower, or this very batch (a retry racing its first upload: its records are
    deduplicated, so it stores nothing twice)."""
    a = agents.c
    return or_(
        a.last_signature.is_(None),
        a.last_seq < batch.seq,
        and_(a.last_seq == batch.seq, a.last_signature == batch.signature),
    )


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# What ingest and the agents command need of an agent: not its status (migration 0012),
# which only the operator's pages read (``collector.storage.queries.AgentSummary``).
_COLUMNS = tuple(agents.c[f.name] for f in fields(AgentRow))  # named alike, in order


def _row(row: Any) -> AgentRow:
    """From a row of ``select(*_COLUMNS)``, in that order."""
    agent_id, name, public_key, created_ms, revoked_ms, last_seq, last_signature = row
    return AgentRow(
        id=agent_id,
        name=name,
        public_key=bytes(public_key),
        created_ms=int(created_ms),
        revoked_ms=None if revoked_ms is None else int(revoked_ms),
        last_seq=int(last_seq),
        last_signature=None if last_signature is None else bytes(last_signature),
    )


_AGENT_BY_ID: dict[tuple[str, str], tuple[str, bool]] = {}


def _agent_by_id(dialect: Dialect) -> tuple[str, bool]:
    """The agent lookup in a dialect's SQL and parameter style, and whether that style is
    positional; one per backend."""
    key = (dialect.name, dialect.paramstyle)
    if key not in _AGENT_BY_ID:
        compiled = select(*_COLUMNS).where(agents.c.id == bindparam("id")).compile(dialect=dialect)
        _AGENT_BY_ID[key] = (compiled.string, compiled.positional)
    return _AGENT_BY_ID[key]


class AgentStore:
    """The agent and enrolment methods of :class:`collector.storage.Storage`."""

    engine: Engine
    _insert: Callable[[Table], Any]

    def create_enroll_token(self, name: str, ttl_ms: int, now_ms: int) -> str:
        """A new one-time token for an agent called ``name``, valid ``ttl_ms`` from now."""
        # Hex, 128 bits: a URL-safe token starts with "-" one time in 64, and the agent's
        # command line (`enroll --token TOKEN`) would take it for an option.
        token = secrets.token_hex(16)
        with self.engine.begin() as conn:
            conn.execute(
                enroll_tokens.insert(),
                {
                    "token_hash": token_hash(token),
                    "name": name,
                    "created_ms": now_ms,
                    "expires_ms": now_ms + ttl_ms,
                },
            )
        return token

    def redeem_enroll_token(self, token: str, public_key: bytes, now_ms: int) -> str:
        """Enrols the key under a new agent id, once; :class:`EnrollError` says why not."""
        key = token_hash(token)
        t = enroll_tokens.c
        with self.engine.begin() as conn:
            found = conn.execute(
                select(t.name, t.expires_ms, t.used_ms).where(t.token_hash == key)
            ).first()
            if found is None:
                raise UnknownToken("unknown enrolment token")
            if found.used_ms is not None:
                raise UsedToken("this enrolment token was used already")
            if found.expires_ms <= now_ms:
                raise ExpiredToken("this enrolment token has expired")
            add = self._insert(agents).on_conflict_do_nothing().returning(agents.c.id)
            for _ in range(_ID_ATTEMPTS):
                agent_id = AGENT_ID_PREFIX + secrets.token_hex(6)
                row = {
                    "id": agent_id,
                    "name": found.name,
                    "public_key": bytes(public_key),
                    "created_ms": now_ms,
                }
                if conn.execute(add, row).first() is not None:
                    break
            else:
                raise RuntimeError("could not draw an unused agent id")
            claimed = conn.execute(
                update(enroll_tokens)
                .where(t.token_hash == key, t.used_ms.is_(None))
                .values(used_ms=now_ms, agent_id=agent_id)
            )
            if claimed.rowcount != 1:
                # Another request redeemed it between our read and this write; raising
                # rolls back the agent row added above.
                raise UsedToken("this enrolment token was used already")
        return agent_id

    def get_agent(self, agent_id: str) -> AgentRow | None:
        """Through the driver: ingest asks once a batch, and SQLAlchemy's connection,
        transaction and result handling cost ten times the query itself (~0.35 ms)."""
        sql, positional = _agent_by_id(self.engine.dialect)
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, (agent_id,) if positional else {"id": agent_id})
            row = cursor.fetchone()
            cursor.close()
        finally:
            connection.close()  # back to the pool, which ends any transaction the read began
        return None if row is None else _row(row)

    def list_agents(self) -> list[AgentRow]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                rows = conn.execute(select(*_COLUMNS).order_by(agents.c.created_ms, agents.c.id))
                return [_row(row) for row in rows]

    def revoke_agent(self, agent_id: str, now_ms: int) -> bool:
        """Marks the agent revoked (first revocation time kept); False if it is unknown."""
        return revoke(self.engine, agents, agent_id, now_ms)


def revoke(engine: Engine, table: Table, row_id: str, now_ms: int) -> bool:
    """Sets the ``revoked_ms`` of the row with ``id`` ``row_id`` unless set already (the
    first revocation time is kept); False if there is no such row."""
    c = table.c
    with engine.begin() as conn:
        if conn.execute(select(c.id).where(c.id == row_id)).first() is None:
            return False
        conn.execute(
            update(table).where(c.id == row_id, c.revoked_ms.is_(None)).values(revoked_ms=now_ms)
        )
    return True

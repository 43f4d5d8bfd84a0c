"""Collector storage: operator tokens, as a part of :class:`collector.storage.Storage`.

An operator token opens the read API's agent-level routes (``collector.web.operator``). It
is ``<id>.<secret>``, printed once by ``netsonde-collector operator-token create``; the
table keeps the id, a name for people, and the SHA-256 of the secret. The id is looked up
(an index seek whose timing says nothing about the secret), then the secret's hash is
compared in constant time (:func:`secret_matches`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from collector.storage.agents import revoke
from collector.storage.engine import READ_ONLY
from collector.storage.schema import operator_tokens

OPERATOR_ID_PREFIX = "op-"
# 256 bits: the secret is never guessed, so failed attempts need no counting.
_SECRET_BYTES = 32
_ID_ATTEMPTS = 5
_ID_HEX = 12
_TOKEN = re.compile(
    rf"({OPERATOR_ID_PREFIX}[0-9a-f]{{{_ID_HEX}}})\.([0-9a-f]{{{2 * _SECRET_BYTES}}})"
)


@dataclass(frozen=True)
class OperatorToken:
    id: str
    name: str
    secret_hash: bytes
    created_ms: int
    revoked_ms: int | None


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(token: OperatorToken, secret: str) -> bool:
    """Whether ``secret`` is the token's, in time independent of where they differ."""
    return hmac.compare_digest(secret_hash(secret), token.secret_hash)


def split_token(token: str) -> tuple[str, str] | None:
    """``<id>.<secret>`` as its two parts; None for anything not shaped like a token, which
    then never reaches the database."""
    match = _TOKEN.fullmatch(token)
    return None if match is None else (match[1], match[2])


def _token(row: Any) -> OperatorToken:
    token_id, name, hashed, created_ms, revoked_ms = row
    return OperatorToken(
        id=token_id,
        name=name,
        secret_hash=bytes(hashed),
        created_ms=int(created_ms),
        revoked_ms=None if revoked_ms is None else int(revoked_ms),
    )


class OperatorStore:
    """The operator-token methods of :class:`collector.storage.Storage`."""

    engine: Engine

    def create_operator_token(self, name: str, now_ms: int) -> tuple[str, str]:
        """A new token called ``name``: its id and the token itself, which is not kept."""
        # Hex, as the enrolment tokens: no "-" or "_" that a shell or a header could mangle.
        secret = secrets.token_hex(_SECRET_BYTES)
        with self.engine.begin() as conn:
            for _ in range(_ID_ATTEMPTS):
                token_id = OPERATOR_ID_PREFIX + secrets.token_hex(_ID_HEX // 2)
                taken = conn.execute(
                    select(operator_tokens.c.id).where(operator_tokens.c.id == token_id)
                ).first()
                if taken is None:
                    break
            else:
                raise RuntimeError("could not draw an unused operator token id")
            conn.execute(
                operator_tokens.insert(),
                {
                    "id": token_id,
                    "name": name,
                    "secret_hash": secret_hash(secret),
                    "created_ms": now_ms,
                },
            )
        return token_id, f"{token_id}.{secret}"

    def operator_token(self, token_id: str) -> OperatorToken | None:
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                row = conn.execute(
                    select(operator_tokens).where(operator_tokens.c.id == token_id)
                ).first()
        return None if row is None else _token(row)

    def list_operator_tokens(self) -> list[OperatorToken]:
        t = operator_tokens.c
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                rows = conn.execute(select(operator_tokens).order_by(t.created_ms, t.id))
                return [_token(row) for row in rows]

    def revoke_operator_token(self, token_id: str, now_ms: int) -> bool:
        """Revokes the token (the first revocation time kept); False if it is unknown."""
        return revoke(self.engine, operator_tokens, token_id, now_ms)

"""Collector storage migration: operator tokens, and the signature of each agent's last batch.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24

The read API named agents and showed their networks and times to anyone (security audit,
issue 21): the routes that do now need an operator's bearer token. ``operator_tokens``
keeps only each token's id and the SHA-256 of its secret, so a leaked database or backup
hands out no token.

Replayed batches were accepted for 30 days and spent the agent's rate limit. Ingest now
keeps ``agents.last_seq`` (there since 0001, never used) and, new here, the signature of
that batch: a batch numbered below it is refused, and one numbered the same only if it is
another batch than the one accepted. Existing agents start with no signature, which
accepts their next batch whatever its number. Written out, as 0001 explains.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from collector.storage.writes_sqlite import SEQ_TRIGGER, SQLITE_BATCH_TRIGGER

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "operator_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_ms", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_operator_tokens"),
    )
    # A nullable column needs no table rebuild on SQLite: plain ALTER TABLE ADD COLUMN.
    op.add_column("agents", sa.Column("last_signature", sa.LargeBinary(64), nullable=True))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # This connection's TEMP ingest trigger names the column, and SQLite checks an ALTER
        # TABLE against every trigger on the table. Made again below, as every connection
        # of this code has it; it is no part of the schema (collector.storage.engine).
        op.execute(f"DROP TRIGGER IF EXISTS temp.{SEQ_TRIGGER}")
    # Native on SQLite since 3.35 (every supported system has 3.40 or later): no table
    # rebuild, which would have to drop a table that measurements reference.
    op.drop_column("agents", "last_signature")
    if sqlite:
        for statement in SQLITE_BATCH_TRIGGER:
            op.execute(statement)
    op.drop_table("operator_tokens")

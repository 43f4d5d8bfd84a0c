"""Collector storage migration: the signed batches, so that every measurement can be checked
on its own against its agent's key.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

An agent signs a whole batch, not each record (agent.wire.batch), so a stored record alone
proves nothing. ``batches`` keeps each accepted batch's signed body and signature once,
keyed by (agent, sequence number), which ingest already makes unique per agent;
``measurements.batch_seq`` names a record's batch and ``batch_index`` its place in the
batch's ``m`` array. Measurements stored before this revision have neither: an evidence
bundle marks them as not individually verifiable. Both columns are nullable, so SQLite adds
them without rebuilding the table. docs/design/007-evidence.md has the choice and its cost.
Written out, as 0001 explains.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from collector.storage.writes_sqlite import SQLITE_BATCH_TRIGGER, SQLITE_TRIGGER_NAMES

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "seq", name="pk_batches"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name="fk_batches_agent_id_agents"),
        sa.CheckConstraint("length(signature) = 64", name="ck_batches_signature_64_bytes"),
    )
    op.add_column("measurements", sa.Column("batch_seq", sa.BigInteger, nullable=True))
    op.add_column("measurements", sa.Column("batch_index", sa.Integer, nullable=True))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # This connection's TEMP ingest triggers name the columns, and SQLite checks an
        # ALTER TABLE against every trigger (migration 0010 says more). Made again below.
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS temp.{name}")
    op.drop_column("measurements", "batch_index")
    op.drop_column("measurements", "batch_seq")
    op.drop_table("batches")
    if sqlite:
        for statement in SQLITE_BATCH_TRIGGER:
            op.execute(statement)

"""Collector storage migration: one-time enrolment tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Only the SHA-256 of a token is stored: a leaked database (or backup) must not hand out
valid tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "enroll_tokens",
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("used_ms", sa.BigInteger, nullable=True),
        sa.Column("agent_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_enroll_tokens"),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name="fk_enroll_tokens_agent_id_agents"
        ),
    )


def downgrade() -> None:
    op.drop_table("enroll_tokens")

"""Collector storage migration: the agents' connectivity checks, for outages.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

One row per (agent, check time): the primary key makes a re-uploaded batch add nothing, and
serves one agent's series in time order. ``/api/v1/outages`` reads a time window across
all agents, hence the index on ``ms``. Written out, as 0001 explains.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connectivity",
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("ms", sa.BigInteger, nullable=False),
        sa.Column("online", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("asn", sa.BigInteger, nullable=True),
        sa.Column("cc", sa.String(2), nullable=True),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "ms", name="pk_connectivity"),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name="fk_connectivity_agent_id_agents"
        ),
        sa.CheckConstraint("ms >= 0", name="ck_connectivity_checked_after_epoch"),
        sa.CheckConstraint("length(cc) = 2", name="ck_connectivity_cc_length"),
    )
    op.create_index("ix_connectivity_ms", "connectivity", ["ms"])


def downgrade() -> None:
    op.drop_index("ix_connectivity_ms", table_name="connectivity")
    op.drop_table("connectivity")

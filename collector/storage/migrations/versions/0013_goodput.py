"""Collector storage migration: the agents' benign goodput samples, for degraded periods.

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-01

Every few connectivity checks an agent also measures a small benign download from the far
end, and the check carries its goodput (``[ms, online, bps]`` in a batch's ``c``). One row
per (agent, check time), as ``connectivity`` (0005): a re-uploaded batch adds nothing.
``/api/v1/outages`` reads a time window across agents, hence the index on ``ms``; the
degraded periods are derived at query time (``collector.degradation``). Written out, as
0001 explains.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "goodput",
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("ms", sa.BigInteger, nullable=False),
        sa.Column("bps", sa.BigInteger, nullable=False),
        sa.Column("asn", sa.BigInteger, nullable=True),
        sa.Column("cc", sa.String(2), nullable=True),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "ms", name="pk_goodput"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name="fk_goodput_agent_id_agents"),
        sa.CheckConstraint("ms >= 0", name="ck_goodput_sampled_after_epoch"),
        sa.CheckConstraint("bps >= 0", name="ck_goodput_bps_positive"),
        sa.CheckConstraint("length(cc) = 2", name="ck_goodput_cc_length"),
    )
    op.create_index("ix_goodput_ms", "goodput", ["ms"])


def downgrade() -> None:
    op.drop_index("ix_goodput_ms", table_name="goodput")
    op.drop_table("goodput")

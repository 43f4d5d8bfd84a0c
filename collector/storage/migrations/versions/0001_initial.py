"""Collector storage migration: the initial schema (agents, measurements, rollups).

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Written out rather than derived from ``schema.metadata``, so that this revision keeps
creating the same tables when the schema moves on; tests/collector/storage compares the result
with the metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_ms", sa.BigInteger, nullable=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_agents"),
    )
    op.create_table(
        "measurements",
        sa.Column("id", sa.LargeBinary(16), nullable=False),
        sa.Column("measured_ms", sa.BigInteger, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("asn", sa.BigInteger, nullable=True),
        sa.Column("cc", sa.String(2), nullable=True),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("verdict", sa.String(64), nullable=False),
        sa.Column("record", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_measurements"),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name="fk_measurements_agent_id_agents"
        ),
        sa.CheckConstraint("length(id) = 16", name="ck_measurements_id_16_bytes"),
        sa.CheckConstraint("measured_ms >= 0", name="ck_measurements_measured_after_epoch"),
        sa.CheckConstraint("length(domain) <= 253", name="ck_measurements_domain_length"),
        sa.CheckConstraint("length(verdict) <= 64", name="ck_measurements_verdict_length"),
        sa.CheckConstraint("length(cc) = 2", name="ck_measurements_cc_length"),
    )
    op.create_index("ix_measurements_measured_ms", "measurements", ["measured_ms"])
    op.create_index("ix_measurements_domain", "measurements", ["domain"])
    op.create_index("ix_measurements_verdict", "measurements", ["verdict"])
    op.create_table(
        "rollups",
        sa.Column("hour_ms", sa.BigInteger, nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("asn", sa.BigInteger, nullable=False),
        sa.Column("cc", sa.String(2), nullable=False),
        sa.Column("verdict", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("hour_ms", "domain", "asn", "cc", "verdict", name="pk_rollups"),
    )
    op.create_index("ix_rollups_domain_hour_ms", "rollups", ["domain", "hour_ms"])


def downgrade() -> None:
    op.drop_table("rollups")
    op.drop_table("measurements")
    op.drop_table("agents")

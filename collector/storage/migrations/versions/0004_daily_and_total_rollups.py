"""Collector storage migration: daily rollups and all-time rollup totals, backfilled.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

The blocking matrix over weeks or all time summed one hourly row per (hour, domain,
network, verdict): with sparse data about one row per measurement. ``daily_rollups``
(one row per UTC day) and ``rollup_totals`` (one row per matrix cell and verdict) are
the same counts, coarser; ingest keeps them in the same transaction as ``rollups``.
Both are filled here from ``measurements``, the source of truth, so an existing store
answers from them at once. docs/design/003-storage.md has the argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DAY_MS = 86_400_000


def upgrade() -> None:
    op.create_table(
        "daily_rollups",
        sa.Column("day_ms", sa.BigInteger, nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("asn", sa.BigInteger, nullable=False),
        sa.Column("cc", sa.String(2), nullable=False),
        sa.Column("verdict", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "day_ms", "domain", "asn", "cc", "verdict", name="pk_daily_rollups"
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "rollup_totals",
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("asn", sa.BigInteger, nullable=False),
        sa.Column("cc", sa.String(2), nullable=False),
        sa.Column("verdict", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("domain", "asn", "cc", "verdict", name="pk_rollup_totals"),
        sqlite_with_rowid=False,
    )
    # Plain SQL, not the current schema module: this revision must keep doing the same
    # thing when the schema moves on. The same statements run on both backends (measured_ms
    # is a non-negative integer, so "/" is floor division on both).
    op.execute(
        f"""
        INSERT INTO daily_rollups (day_ms, domain, asn, cc, verdict, count)
        SELECT (measured_ms / {_DAY_MS}) * {_DAY_MS}, domain, coalesce(asn, 0),
               coalesce(cc, ''), verdict, count(*)
        FROM measurements
        GROUP BY (measured_ms / {_DAY_MS}) * {_DAY_MS}, domain, coalesce(asn, 0),
                 coalesce(cc, ''), verdict
        """
    )
    # From the daily rows just written, in this transaction: the same counts, fewer rows.
    op.execute(
        """
        INSERT INTO rollup_totals (domain, asn, cc, verdict, count)
        SELECT domain, asn, cc, verdict, sum(count)
        FROM daily_rollups
        GROUP BY domain, asn, cc, verdict
        """
    )


def downgrade() -> None:
    op.drop_table("rollup_totals")
    op.drop_table("daily_rollups")

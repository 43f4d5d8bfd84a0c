"""Collector storage migration: weekly rollups, backfilled.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

The blocking matrix over the last 7 days or longer summed one daily row per (day, cell,
verdict): in sparse data a day has a row for nearly every cell, so seven days were seven
times the matrix. ``weekly_rollups`` has the same counts per ISO week (Monday 00:00 UTC);
ingest keeps it in the same transaction as the other rollups. Filled here from
``daily_rollups`` (already equal to a recount of ``measurements`` since 0004, and 30 times
smaller). docs/design/003-storage.md has the argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DAY_MS = 86_400_000
_WEEK_MS = 7 * _DAY_MS
# The epoch was a Thursday: shifted by three days, weeks start on Mondays.
_OFFSET_MS = 3 * _DAY_MS


def upgrade() -> None:
    op.create_table(
        "weekly_rollups",
        sa.Column("week_ms", sa.BigInteger, nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("asn", sa.BigInteger, nullable=False),
        sa.Column("cc", sa.String(2), nullable=False),
        sa.Column("verdict", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "week_ms", "domain", "asn", "cc", "verdict", name="pk_weekly_rollups"
        ),
        sqlite_with_rowid=False,
    )
    # Plain SQL with fixed constants, not the schema module: this revision must keep doing
    # the same thing when the schema moves on. day_ms + offset is non-negative, so "/" is
    # floor division on both backends.
    op.execute(
        f"""
        INSERT INTO weekly_rollups (week_ms, domain, asn, cc, verdict, count)
        SELECT ((day_ms + {_OFFSET_MS}) / {_WEEK_MS}) * {_WEEK_MS} - {_OFFSET_MS},
               domain, asn, cc, verdict, sum(count)
        FROM daily_rollups
        GROUP BY ((day_ms + {_OFFSET_MS}) / {_WEEK_MS}) * {_WEEK_MS} - {_OFFSET_MS},
                 domain, asn, cc, verdict
        """
    )


def downgrade() -> None:
    op.drop_table("weekly_rollups")

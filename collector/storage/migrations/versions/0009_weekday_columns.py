"""Collector storage migration: the weekly rollups count each day in a column of their own,
and replace the daily rollups.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23

A window's whole days were read one row per (day, cell, verdict): a 7-day window with no
whole ISO week inside it read seven rows per cell and verdict, ~89,000 in the 1M-measurement
benchmark, and the blocking matrix over it took ~115 ms. ``weekly_rollups`` now keeps one
row per (ISO week, cell, verdict) with a count for each of its seven days (``mon`` ..
``sun``): whichever days of a week a window takes are read from that one row, so any 7-day
window reads at most two rows per cell and verdict. ``daily_rollups`` holds nothing the new
table does not, and goes. Filled from ``daily_rollups``; the downgrade rebuilds both old
tables from the new one. docs/design/003-storage.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain SQL with fixed constants, not the schema module: this revision must keep doing the
# same thing when the schema moves on.
_DAY_MS = 86_400_000
_WEEK_MS = 7 * _DAY_MS
# The epoch was a Thursday: shifted by three days, weeks start on Mondays. day_ms + offset
# is non-negative, so "/" is floor division on both backends.
_OFFSET_MS = 3 * _DAY_MS
_WEEK = f"((day_ms + {_OFFSET_MS}) / {_WEEK_MS}) * {_WEEK_MS} - {_OFFSET_MS}"
_WEEKDAY = f"((day_ms + {_OFFSET_MS}) % {_WEEK_MS}) / {_DAY_MS}"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_KEY = "cell, verdict"


def upgrade() -> None:
    op.drop_table("weekly_rollups")
    op.create_table(
        "weekly_rollups",
        sa.Column("week_ms", sa.BigInteger, nullable=False),
        sa.Column("cell", sa.BigInteger, nullable=False),
        sa.Column("verdict", sa.BigInteger, nullable=False),
        *(sa.Column(day, sa.BigInteger, nullable=False) for day in _DAYS),
        sa.PrimaryKeyConstraint("week_ms", "cell", "verdict", name="pk_weekly_rollups"),
        sqlite_with_rowid=False,
    )
    days = ", ".join(
        f"sum(CASE WHEN {_WEEKDAY} = {i} THEN count ELSE 0 END)" for i in range(len(_DAYS))
    )
    # In key order: the table's pages are written in order, as ingest would lay them out.
    op.execute(
        f"INSERT INTO weekly_rollups (week_ms, {_KEY}, {', '.join(_DAYS)}) "
        f"SELECT {_WEEK}, {_KEY}, {days} FROM daily_rollups "
        f"GROUP BY {_WEEK}, {_KEY} ORDER BY {_WEEK}, {_KEY}"
    )
    op.drop_table("daily_rollups")


def downgrade() -> None:
    _counts_table("daily_rollups", "day_ms")
    for i, day in enumerate(_DAYS):
        op.execute(
            f"INSERT INTO daily_rollups (day_ms, {_KEY}, count) "
            f"SELECT week_ms + {i * _DAY_MS}, {_KEY}, {day} FROM weekly_rollups WHERE {day} > 0"
        )
    op.drop_table("weekly_rollups")
    _counts_table("weekly_rollups", "week_ms")
    # As 0006 filled it. Not renamed from a copy: SQLite checks a rename against every
    # trigger, and a connection's TEMP ingest trigger names the table dropped above.
    op.execute(
        f"INSERT INTO weekly_rollups (week_ms, {_KEY}, count) "
        f"SELECT {_WEEK}, {_KEY}, sum(count) FROM daily_rollups "
        f"GROUP BY {_WEEK}, {_KEY} ORDER BY {_WEEK}, {_KEY}"
    )


def _counts_table(table: str, start: str) -> None:
    """0008's shape of a rollup table: one count per (bucket, cell, verdict)."""
    op.create_table(
        table,
        sa.Column(start, sa.BigInteger, nullable=False),
        sa.Column("cell", sa.BigInteger, nullable=False),
        sa.Column("verdict", sa.BigInteger, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(start, "cell", "verdict", name=f"pk_{table}"),
        sqlite_with_rowid=False,
    )

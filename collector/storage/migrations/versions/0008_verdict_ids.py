"""Collector storage migration: the rollups key their counts by an integer verdict id.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23

The blocking matrix over a window groups and sorts the rollup rows of the window's weeks,
days and hours by (cell, verdict): ~40,000 rows for the last 7 days of the 1M-measurement
benchmark. ``verdicts`` gives each verdict name an integer id, and the four rollup tables
keep (bucket, cell, verdict id, count): two integers to compare instead of an integer and
a text. Every rollup row is carried over as it is, its verdict looked up by name.
docs/design/003-storage.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each rollup table and its bucket-start column (None: all time).
_TABLES = (
    ("rollups", "hour_ms"),
    ("daily_rollups", "day_ms"),
    ("weekly_rollups", "week_ms"),
    ("rollup_totals", None),
)


def upgrade() -> None:
    op.create_table(
        "verdicts",
        # INTEGER on SQLite, where only that spelling makes the key the rowid.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_verdicts"),
        sa.UniqueConstraint("name", name="uq_verdicts_name"),
    )
    # Plain SQL with fixed names, not the schema module: this revision must keep doing the
    # same thing when the schema moves on. The all-time table names every verdict counted.
    op.execute(
        "INSERT INTO verdicts (name) SELECT verdict FROM rollup_totals GROUP BY verdict "
        "ORDER BY verdict"
    )
    for table, start in _TABLES:
        _rekey(table, start, by_id=True)
    _index()


def downgrade() -> None:
    for table, start in _TABLES:
        _rekey(table, start, by_id=False)
    _index()
    op.drop_table("verdicts")


def _index() -> None:
    # One domain's or network's cells across hours, answered from this index alone (0007).
    op.create_index(
        "ix_rollups_cell_verdict_hour_ms_count", "rollups", ["cell", "verdict", "hour_ms", "count"]
    )


def _rekey(table: str, start: str | None, *, by_id: bool) -> None:
    """Rewrites ``table`` keyed by verdict id (``by_id``) or by name, the verdicts looked up
    in ``verdicts``: through a plain copy, so the new table takes the old one's name and
    constraint names."""
    bucket = f"{start}, " if start else ""
    verdict, join = ("v.id", "v.name = r.verdict") if by_id else ("v.name", "v.id = r.verdict")
    op.execute(
        f"CREATE TABLE {table}_0008 AS "
        f"SELECT {f'r.{start}, ' if start else ''}r.cell, {verdict} AS verdict, r.count "
        f"FROM {table} r JOIN verdicts v ON {join}"
    )
    op.drop_table(table)
    columns: list[sa.Column[Any]] = (
        [sa.Column(start, sa.BigInteger, nullable=False)] if start else []
    )
    op.create_table(
        table,
        *columns,
        sa.Column("cell", sa.BigInteger, nullable=False),
        sa.Column("verdict", sa.BigInteger if by_id else sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(*([start] if start else []), "cell", "verdict", name=f"pk_{table}"),
        # The hourly table has a rowid on SQLite, as before; the coarser ones none.
        sqlite_with_rowid=table == "rollups",
    )
    # In key order: each table's pages are written in order, as ingest would lay them out.
    key = f"{bucket}cell, verdict"
    op.execute(
        f"INSERT INTO {table} ({key}, count) SELECT {key}, count FROM {table}_0008 ORDER BY {key}"
    )
    op.drop_table(f"{table}_0008")

"""Collector storage migration: the rollups key their counts by an integer cell id.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22

The blocking matrix over a window groups and sorts the rollup rows of the window's weeks,
days and hours: ~40,000 rows for the last 7 days of the 1M-measurement benchmark, each
keyed by a domain, an ASN and a country. ``cells`` gives each (domain, asn, cc) an integer
id, and the four rollup tables keep (bucket, cell, verdict, count). Every rollup row is
carried over as it is, its cell looked up by name. docs/design/003-storage.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
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
        "cells",
        # INTEGER on SQLite, where only that spelling makes the key the rowid.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("asn", sa.BigInteger, nullable=False),
        sa.Column("cc", sa.String(2), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cells"),
        sa.UniqueConstraint("domain", "asn", "cc", name="uq_cells_domain_asn_cc"),
    )
    # Plain SQL with fixed names, not the schema module: this revision must keep doing the
    # same thing when the schema moves on. The all-time table names every cell there is.
    op.execute(
        "INSERT INTO cells (domain, asn, cc) "
        "SELECT domain, asn, cc FROM rollup_totals GROUP BY domain, asn, cc "
        "ORDER BY domain, asn, cc"
    )
    for table, start in _TABLES:
        _rekey(table, start, by_cell=True)
    op.create_index(
        "ix_rollups_cell_verdict_hour_ms_count", "rollups", ["cell", "verdict", "hour_ms", "count"]
    )


def downgrade() -> None:
    for table, start in _TABLES:
        _rekey(table, start, by_cell=False)
    op.create_index("ix_rollups_domain_hour_ms", "rollups", ["domain", "hour_ms"])
    op.create_index(
        "ix_rollups_domain_asn_cc_verdict_hour_ms_count",
        "rollups",
        ["domain", "asn", "cc", "verdict", "hour_ms", "count"],
    )
    op.drop_table("cells")


def _rekey(table: str, start: str | None, *, by_cell: bool) -> None:
    """Rewrites ``table`` keyed by cell id (``by_cell``) or by name, its cells looked up in
    ``cells``: through a plain copy, so the new table takes the old one's name and
    constraint names."""
    bucket = f"{start}, " if start else ""
    if by_cell:
        key, named, join = (
            "cell",
            "c.id AS cell",
            "c.domain = r.domain AND c.asn = r.asn AND c.cc = r.cc",
        )
    else:
        key, named, join = "domain, asn, cc", "c.domain, c.asn, c.cc", "c.id = r.cell"
    op.execute(
        f"CREATE TABLE {table}_0007 AS "
        f"SELECT {f'r.{start}, ' if start else ''}{named}, r.verdict, r.count "
        f"FROM {table} r JOIN cells c ON {join}"
    )
    op.drop_table(table)
    _create(table, start, by_cell=by_cell)
    op.execute(
        f"INSERT INTO {table} ({bucket}{key}, verdict, count) "
        f"SELECT {bucket}{key}, verdict, count FROM {table}_0007"
    )
    op.drop_table(f"{table}_0007")


def _create(table: str, start: str | None, *, by_cell: bool) -> None:
    """``table`` as 0007 has it (``by_cell``) or as 0006 left it."""
    names = ["cell"] if by_cell else ["domain", "asn", "cc"]
    columns: list[sa.Column[Any]] = (
        [sa.Column(start, sa.BigInteger, nullable=False)] if start else []
    )
    if by_cell:
        columns.append(sa.Column("cell", sa.BigInteger, nullable=False))
    else:
        columns += [
            sa.Column("domain", sa.String(253), nullable=False),
            sa.Column("asn", sa.BigInteger, nullable=False),
            sa.Column("cc", sa.String(2), nullable=False),
        ]
    key = ([start] if start else []) + names + ["verdict"]
    op.create_table(
        table,
        *columns,
        sa.Column("verdict", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(*key, name=f"pk_{table}"),
        # The hourly table has a rowid on SQLite, as before; the coarser ones none.
        sqlite_with_rowid=table == "rollups",
    )

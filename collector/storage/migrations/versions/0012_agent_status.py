"""Collector storage migration: each agent's status as its last accepted batch described it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

The operator's agent health page (docs/design/009-dashboard.md) shows each agent's version,
spool depth and evictions. Batches carry them (``e``, and from this revision ``q`` and ``r``;
docs/wire-format.md, "Batches"), and ingest now keeps the last accepted batch's on the
``agents`` row, in the UPDATE that already makes that batch the agent's last: no statement
more per batch. ``last_batch_ms`` is that batch's receive time, heartbeat-only ones included.
Existing agents start with all of them NULL (not said), until their next batch. Nullable
columns: SQLite adds them without rebuilding the table. Written out, as 0001 explains.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from collector.storage.writes_sqlite import SQLITE_BATCH_TRIGGER, SQLITE_TRIGGER_NAMES

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("last_batch_ms", "version", "spool_records", "spool_checks", "evictions")


def upgrade() -> None:
    op.add_column("agents", sa.Column("last_batch_ms", sa.BigInteger, nullable=True))
    op.add_column("agents", sa.Column("version", sa.String(64), nullable=True))
    op.add_column("agents", sa.Column("spool_records", sa.BigInteger, nullable=True))
    op.add_column("agents", sa.Column("spool_checks", sa.BigInteger, nullable=True))
    op.add_column("agents", sa.Column("evictions", sa.BigInteger, nullable=True))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # This connection's TEMP ingest triggers name the columns, and SQLite checks an
        # ALTER TABLE against every trigger (migration 0010 says more). Made again below.
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS temp.{name}")
    for column in reversed(_COLUMNS):
        op.drop_column("agents", column)
    if sqlite:
        for statement in SQLITE_BATCH_TRIGGER:
            op.execute(statement)

"""Collector storage migration: indexes for the query API.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

``/api/v1/blocking`` groups rollups by (domain, asn, cc, verdict): an index in that order
that also holds hour_ms and count answers it from the index alone, already grouped, with
no sort. ``/api/v1/agents`` shows each agent's last upload: (agent_id, received_ms) makes
that one index seek per agent instead of a scan of every measurement.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLLUPS_MATRIX = "ix_rollups_domain_asn_cc_verdict_hour_ms_count"
_LAST_SEEN = "ix_measurements_agent_id_received_ms"


def upgrade() -> None:
    op.create_index(
        _ROLLUPS_MATRIX, "rollups", ["domain", "asn", "cc", "verdict", "hour_ms", "count"]
    )
    op.create_index(_LAST_SEEN, "measurements", ["agent_id", "received_ms"])


def downgrade() -> None:
    op.drop_index(_LAST_SEEN, table_name="measurements")
    op.drop_index(_ROLLUPS_MATRIX, table_name="rollups")

"""Collector storage: measurements, agents, operator tokens and rollups on SQLite or PostgreSQL.

``open_storage(url)`` returns the one :class:`Storage` interface for either backend.
"""

from collector.storage.agents import (
    AgentRow,
    EnrollError,
    ExpiredToken,
    UnknownToken,
    UsedToken,
)
from collector.storage.records import (
    AgentStatus,
    BatchSeq,
    IngestRecord,
    IngestResult,
    ReclassifyResult,
    RejectedBatch,
    ReplayedBatch,
)
from collector.storage.store import Storage, open_storage

__all__ = [
    "AgentRow",
    "AgentStatus",
    "BatchSeq",
    "EnrollError",
    "ExpiredToken",
    "IngestRecord",
    "IngestResult",
    "ReclassifyResult",
    "RejectedBatch",
    "ReplayedBatch",
    "Storage",
    "UnknownToken",
    "UsedToken",
    "open_storage",
]

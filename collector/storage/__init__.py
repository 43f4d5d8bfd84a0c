"""Collector storage: measurements, agents and hourly rollups on SQLite or PostgreSQL.

``open_storage(url)`` returns the one :class:`Storage` interface for either backend.
"""

from collector.storage.agents import (
    AgentRow,
    EnrollError,
    ExpiredToken,
    UnknownToken,
    UsedToken,
)
from collector.storage.records import IngestRecord, IngestResult, ReclassifyResult, RejectedBatch
from collector.storage.store import Storage, open_storage

__all__ = [
    "AgentRow",
    "EnrollError",
    "ExpiredToken",
    "IngestRecord",
    "IngestResult",
    "ReclassifyResult",
    "RejectedBatch",
    "Storage",
    "UnknownToken",
    "UsedToken",
    "open_storage",
]

"""Collector, storage: measurements, agents and hourly rollups on SQLite or PostgreSQL.

``open_storage(url)`` returns the one :class:`Storage` interface for either backend.
"""

from collector.storage.records import IngestRecord, IngestResult, ReclassifyResult, RejectedBatch
from collector.storage.store import Storage, open_storage

__all__ = [
    "IngestRecord",
    "IngestResult",
    "ReclassifyResult",
    "RejectedBatch",
    "Storage",
    "open_storage",
]

"""Report test fixtures: the storage tests' backends (SQLite, and PostgreSQL as there)."""

from tests.collector.storage.conftest import pg_url, storage, storage_url

__all__ = ["pg_url", "storage", "storage_url"]

"""Collector storage: engines for SQLite and PostgreSQL, and the schema migrations.

SQLite runs in WAL mode with ``synchronous=FULL``: a committed batch survives a power
loss, which matters because the agent deletes what the collector acknowledged. It takes
its write lock when a transaction begins, so two writers never both hold a read snapshot
and then fail to upgrade it.
Opening a store always runs ``alembic upgrade head``; concurrent openers are serialized
by the SQLite write lock or a PostgreSQL advisory lock.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry

from collector.storage.writes_sqlite import SQLITE_BATCH_TRIGGER

MIGRATIONS = Path(__file__).with_name("migrations")
# Execution option for transactions that only read: they need no SQLite write lock.
READ_ONLY = "netsonde_read_only"
# Arbitrary, fixed: the key of the advisory lock that serializes migrations on PostgreSQL.
_MIGRATION_LOCK = 0x6E65_7473_6F6E_6465 & 0x7FFF_FFFF_FFFF_FFFF
BUSY_TIMEOUT_S = 30.0


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            # psycopg (3) is the driver netsonde depends on; a plain postgresql:// means it.
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    raise ValueError(f"unsupported database {url!r}: use sqlite:///PATH or postgresql://...")


def _sqlite_engine(url: URL) -> Engine:
    if url.database in (None, "", ":memory:"):
        # Each pooled connection would see its own empty in-memory database.
        raise ValueError("SQLite storage needs a file: sqlite:///PATH")
    engine = create_engine(
        url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's begin event below, not the sqlite3 module, start transactions.
        dbapi_connection.isolation_level = None
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            dbapi_connection.execute(f"PRAGMA {pragma}")
        # Ingest's views and triggers, TEMP: each connection makes its own.
        for statement in SQLITE_BATCH_TRIGGER:
            dbapi_connection.execute(statement)

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def upgrade(engine: Engine) -> None:
    """``alembic upgrade head`` on the engine's database, without an alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Held until commit: a second collector starting at once waits, then finds
            # the schema current. (SQLite's BEGIN IMMEDIATE already serializes this.)
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def sqlstate(error: BaseException) -> Any:
    """The SQLSTATE of a psycopg error, bare or wrapped by SQLAlchemy; None for others."""
    return getattr(error, "sqlstate", None) or getattr(
        getattr(error, "orig", None), "sqlstate", None
    )

"""Agent daemon: the spool's SQLite file (``agent.daemon.spool``): created private and durable,
opened in WAL mode with full syncs, and its schema created or migrated.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from agent.daemon.files import fsync_dir

__all__ = ["SCHEMA_VERSION", "SpoolError", "connect", "make_durable", "migrate"]

SCHEMA_VERSION = 2  # 2: the checks table

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    measured_ms INTEGER NOT NULL,
    record BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checks (ms INTEGER PRIMARY KEY, online INTEGER NOT NULL);
"""


class SpoolError(Exception):
    """The spool cannot be opened or used; the message says why."""


def _create_private(file: Path) -> None:
    # Created by hand with 0600 before SQLite sees it, so measurements are never readable by
    # others, even for an instant; SQLite gives the -wal and -shm files the same mode.
    try:
        try:
            fd = os.open(file, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            fd = os.open(file, os.O_RDWR)
            created = False
        else:
            created = True
        try:
            os.fchmod(fd, 0o600)  # an existing file may have been made with a looser mode
        finally:
            os.close(fd)
        if created:
            # The file's directory entry is durable only once its directory is synced.
            fsync_dir(file.parent)
    except OSError as exc:
        raise SpoolError(f"cannot open spool {file}: {exc}") from exc


def connect(file: Path) -> sqlite3.Connection:
    """A connection to the spool at ``file``, created 0600 if it does not exist yet."""
    _create_private(file)
    try:
        # isolation_level=None: transactions are opened explicitly, with BEGIN IMMEDIATE,
        # so a read-then-write (the eviction) never has to upgrade its lock mid-way.
        return sqlite3.connect(file, timeout=10.0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise SpoolError(f"cannot open spool {file}: {exc}") from exc


def make_durable(conn: sqlite3.Connection, file: Path) -> None:
    """WAL journaling with a sync on every commit; raises sqlite3.Error or SpoolError."""
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise SpoolError(f"spool {file}: cannot use WAL journaling (got {mode!r})")
    # In WAL mode, NORMAL syncs the log only at checkpoints: a commit survives a crash of the
    # process but may vanish on power loss. FULL syncs the log on every commit, which is what
    # lets Spool.add() promise the record is durable when it returns.
    conn.execute("PRAGMA synchronous=FULL")


def migrate(conn: sqlite3.Connection, file: Path, counters: Iterable[str]) -> None:
    """Creates the tables, or brings an older spool's up to date, and the meta ``counters``
    at 0 where missing; call it in a transaction."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    if row[0] is None:
        conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
    elif row[0] == 1:
        # Version 1 lacked only the checks table, which the script above just made.
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
    elif row[0] != SCHEMA_VERSION:
        raise SpoolError(
            f"spool {file} has schema version {row[0]}, this agent knows only "
            f"{SCHEMA_VERSION}; move the file aside or upgrade the agent"
        )
    for key in counters:
        conn.execute("INSERT OR IGNORE INTO meta VALUES (?, 0)", (key,))

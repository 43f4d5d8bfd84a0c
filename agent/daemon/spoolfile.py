"""Agent daemon: the spool's SQLite file (``agent.daemon.spool``): created private and durable,
opened in WAL mode with full syncs, and its schema created or migrated; what a full disk looks
like to it, and the reserve that lets it delete records on one.

In WAL mode even a DELETE appends to the log first, so on a full disk the spool could not
drop the records the collector acknowledged, and would send them again and again. A small
reserve file next to it (``spool.db-reserve``, :data:`RESERVE_BYTES`) holds back room for
that: released when a delete finds the disk full, filled again once the log is truncated.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from agent.daemon.files import fsync_dir

__all__ = [
    "RESERVE_BYTES",
    "SCHEMA_VERSION",
    "SpoolError",
    "SpoolFull",
    "SpoolRecordTooLarge",
    "checkpoint",
    "connect",
    "fill_reserve",
    "make_durable",
    "migrate",
    "release_reserve",
    "spool_error",
]

# 2: the checks table. The goodput table (a sample beside some checks) came later without a
# new version: made where missing, as the script makes every table, and an older agent that
# opens the file again has no use for it and leaves it be.
SCHEMA_VERSION = 2
# Deleting 500 records of 1.5 kB appends about 1 MB to the log, so a reserve this size
# deletes a few hundred records per transaction, the log truncated between them.
RESERVE_BYTES = 1 << 20
_RESERVE_SUFFIX = "-reserve"

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
CREATE TABLE IF NOT EXISTS goodput (ms INTEGER PRIMARY KEY, bps INTEGER NOT NULL);
"""


class SpoolError(Exception):
    """The spool cannot be opened or used; the message says why."""


class SpoolRecordTooLarge(SpoolError, ValueError):
    """A single record larger than the whole spool: storing it would evict everything."""


class SpoolFull(SpoolError):
    """The spool's file system is full: nothing new can be stored until space returns."""


def spool_error(exc: sqlite3.Error, file: Path) -> SpoolError:
    """The SpoolError for ``exc``: a :class:`SpoolFull` when SQLite found no room."""
    code = getattr(exc, "sqlite_errorcode", 0)
    full = code & 0xFF == sqlite3.SQLITE_FULL or code == sqlite3.SQLITE_IOERR_SHMSIZE
    return (SpoolFull if full else SpoolError)(f"spool {file}: {exc}")


def _reserve(file: Path) -> Path:
    return file.with_name(file.name + _RESERVE_SUFFIX)


def fill_reserve(file: Path) -> None:
    """Grows the reserve beside ``file`` towards :data:`RESERVE_BYTES`; on a full disk it
    keeps what fitted, and is grown again after the next delete."""
    path = _reserve(file)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, size, os.SEEK_SET)
        chunk = bytes(64 * 1024)
        while size < RESERVE_BYTES:
            # Written, not fallocated: fallocate is all or nothing, and not on every file system.
            size += os.write(fd, chunk[: RESERVE_BYTES - size])
    except OSError:
        pass  # a full disk, most likely: the reserve is a help, not a need
    finally:
        os.close(fd)


def release_reserve(file: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_reserve(file))


def checkpoint(conn: sqlite3.Connection, lock: threading.Lock) -> None:
    """Copies the log into the database and truncates it to nothing, so the room a delete
    used in the log is free again (for the reserve, or whatever else needs it)."""
    # Busy (a reader) or full: the next one tries again.
    with lock, contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


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

"""Collector storage: ingest's writes on SQLite, statements run straight through sqlite3.

SQLite has one writer at a time, and each statement of a write transaction gives up the
GIL while SQLite works and must win it back from the threads checking the next batches
while every other batch waits for the write lock. So a batch is first tried as one
statement that SQLite commits by itself (:meth:`SQLiteWrites.prepare_batch`), and takes
a transaction (:meth:`Writes.run`) only when that cannot be. docs/design/004-ingest.md,
fifth and sixth passes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any, cast

from collector.storage.records import (
    UNKNOWN_STATUS,
    AgentStatus,
    BatchSeq,
    IngestRecord,
    ReplayedBatch,
)
from collector.storage.schema import WEEKDAYS
from collector.storage.writes import Prepared, Writes, rollup_rows

# The batch's measurements as rows of IngestRecord's own fields, the batch's agent, network
# and time bound once per statement: SQLite binds each parameter while holding the GIL and,
# in the write transaction, the write lock, and IngestRecords flatten straight into rows.
_RECORD_COLUMNS = tuple("id" if name == "key" else name for name in IngestRecord._fields)
_BATCH_COLUMNS = ("received_ms", "agent_id", "asn", "cc")
# A measurement's also name its signed batch (migration 0011), which checks do not.
_MEASUREMENT_BATCH_COLUMNS = (*_BATCH_COLUMNS, "batch_seq")
_INSERT_MEASUREMENTS = (
    f"INSERT INTO measurements ({', '.join(_RECORD_COLUMNS + _MEASUREMENT_BATCH_COLUMNS)}) "
    f"SELECT {', '.join(f'column{n}' for n in range(1, len(_RECORD_COLUMNS) + 1))}, "
    f"{', '.join('?' * len(_MEASUREMENT_BATCH_COLUMNS))} FROM ("
)
# WHERE: else SQLite reads ON CONFLICT as a join's ON.
_INSERT_MEASUREMENTS_TAIL = ") WHERE true ON CONFLICT DO NOTHING"
# Rows per statement: 500 rows of 6 columns stay well under SQLite's 32,766 variables.
_SQLITE_CHUNK = 500

# A whole batch as one statement, run outside any transaction: SQLite makes a lone statement
# its own transaction, begun and committed inside the one call that runs it, so the write
# turn gives up the GIL once (plus the statement's preparation when not cached) rather
# than for BEGIN IMMEDIATE, each statement, and COMMIT, winning it back each time from the
# threads checking the next batches while every other batch waits for the write lock. The
# batch's measurements, rollup counts (from rollup_rows, as on PostgreSQL) and connectivity
# checks go into this TEMP view, each row tagged with its kind, and its triggers write each
# row to its table (a weekly row has a count per weekday where the others have one ``n``).
# The counts assume every measurement is new: a measurement stored already makes the
# trigger abort the statement, undoing all of it, and the batch is written again the long
# way (``Writes.run``), whose rollup counts go into the same view, one statement per table
# rather than one per row. The rollup rows go table by table, so each table's new pages
# are still allocated together (a trigger writing every table per hourly count scattered
# them, and the 7-day blocking query over a table so filled was ~20 ms slower). The
# abort's message is how it is told apart from a refused batch. TEMP, so every connection
# makes its own (collector.storage.engine) and no migration is involved.
#
# Each rollup table, its kind being its place in rollup_rows' order: its key columns, its
# count columns, and the view's columns those counts ride in.
_ROLLUP_TABLES = (
    ("rollups", ("hour_ms", "cell", "verdict"), ("count",), ("n",)),
    ("weekly_rollups", ("week_ms", "cell", "verdict"), WEEKDAYS, WEEKDAYS),
    ("rollup_totals", ("cell", "verdict"), ("count",), ("n",)),
)
_BATCH_INPUT = "ingest_batch"
_MEASUREMENT_KIND = len(_ROLLUP_TABLES)
_CHECK_KIND = _MEASUREMENT_KIND + 1
# The batch's sequence number rides in measured_ms, its signature in record; its signed
# body, when the batch is to be kept (migration 0011), in body; the agent's status
# (migration 0012) in columns of its own, written onto the agent with the number.
_SEQ_KIND = _CHECK_KIND + 1
STORED_ALREADY = "netsonde: a measurement is stored already"
REPLAYED = "netsonde: the batch is older than the last of its agent"
# Migration 0010's downgrade drops and remakes it: SQLite checks an ALTER TABLE against the
# triggers that name the table, TEMP ones too, and this one names the column it drops.
SEQ_TRIGGER = f"{_BATCH_INPUT}_seq"
_STATUS_COLUMNS = AgentStatus._fields
_BATCH_VIEW_COLUMNS = (
    "kind", *_RECORD_COLUMNS, *_MEASUREMENT_BATCH_COLUMNS, "body", "start", "cell", "n",
    *WEEKDAYS, *_STATUS_COLUMNS,
)  # fmt: skip
_MEASUREMENT_COLUMNS = _RECORD_COLUMNS + _MEASUREMENT_BATCH_COLUMNS
_CHECK_COLUMNS = ("ms", "online", *_BATCH_COLUMNS)


def _sqlite_batch_trigger() -> tuple[str, ...]:
    new = ", ".join(f"NEW.{column}" for column in _MEASUREMENT_COLUMNS)
    upserts = []
    for table_index, (table, dims, counts, view_counts) in enumerate(_ROLLUP_TABLES):
        values = ["NEW.cell", "NEW.verdict"]
        if len(dims) == 3:
            values.insert(0, "NEW.start")
        values += [f"NEW.{column}" for column in view_counts]
        keys = ", ".join(dims)
        added = ", ".join(f"{column} = {column} + excluded.{column}" for column in counts)
        upserts.append(
            f"INSERT INTO {table} ({keys}, {', '.join(counts)}) SELECT {', '.join(values)} "
            f"WHERE NEW.kind = {table_index} "
            f"ON CONFLICT ({keys}) DO UPDATE SET {added};"
        )
    # A check's time and state ride in measured_ms and n.
    check = "NEW.measured_ms, NEW.n, " + ", ".join(f"NEW.{c}" for c in _BATCH_COLUMNS)
    view = "TEMP VIEW IF NOT EXISTS"
    trigger = f"TEMP TRIGGER IF NOT EXISTS {_BATCH_INPUT}"
    # collector.storage.agents.accepts, spelled in SQL.
    newer = (
        "last_signature IS NULL OR last_seq < NEW.measured_ms "
        "OR (last_seq = NEW.measured_ms AND last_signature = NEW.record)"
    )
    return (
        f"CREATE {view} {_BATCH_INPUT} AS SELECT "
        + ", ".join(f"NULL AS {column}" for column in _BATCH_VIEW_COLUMNS)
        + " WHERE 0",
        f"CREATE {trigger}_measurement INSTEAD OF INSERT ON {_BATCH_INPUT} "
        f"WHEN NEW.kind = {_MEASUREMENT_KIND} BEGIN "
        f"INSERT INTO measurements ({', '.join(_MEASUREMENT_COLUMNS)}) VALUES ({new}) "
        "ON CONFLICT DO NOTHING; "
        f"SELECT RAISE(ABORT, '{STORED_ALREADY}') WHERE changes() = 0; END",
        f"CREATE {trigger}_rollup INSTEAD OF INSERT ON {_BATCH_INPUT} "
        f"WHEN NEW.kind < {_MEASUREMENT_KIND} BEGIN {' '.join(upserts)} END",
        f"CREATE {trigger}_check INSTEAD OF INSERT ON {_BATCH_INPUT} "
        f"WHEN NEW.kind = {_CHECK_KIND} BEGIN "
        f"INSERT INTO connectivity ({', '.join(_CHECK_COLUMNS)}) VALUES ({check}) "
        "ON CONFLICT DO NOTHING; END",
        f"CREATE TEMP TRIGGER IF NOT EXISTS {SEQ_TRIGGER} INSTEAD OF INSERT ON {_BATCH_INPUT} "
        f"WHEN NEW.kind = {_SEQ_KIND} BEGIN "
        "UPDATE agents SET last_seq = NEW.measured_ms, last_signature = NEW.record, "
        "last_batch_ms = NEW.received_ms, "
        + ", ".join(f"{column} = NEW.{column}" for column in _STATUS_COLUMNS)
        + f" WHERE id = NEW.agent_id AND ({newer}); "
        f"SELECT RAISE(ABORT, '{REPLAYED}') WHERE changes() = 0; "
        "INSERT INTO batches (agent_id, seq, received_ms, body, signature) "
        "SELECT NEW.agent_id, NEW.measured_ms, NEW.received_ms, NEW.body, NEW.record "
        "WHERE NEW.body IS NOT NULL ON CONFLICT DO NOTHING; END",
    )


SQLITE_BATCH_TRIGGER = _sqlite_batch_trigger()
# Every TEMP trigger above, for a migration that must drop them to alter a table they name.
SQLITE_TRIGGER_NAMES = tuple(
    f"{_BATCH_INPUT}_{kind}" for kind in ("measurement", "rollup", "check", "seq")
)
_BATCH_HEAD = f"INSERT INTO {_BATCH_INPUT} ({', '.join(_BATCH_VIEW_COLUMNS)}) "
# SQLite's limit on a statement's parameters (SQLITE_MAX_VARIABLE_NUMBER, since 3.32).
_SQLITE_MAX_PARAMETERS = 32_766


def _select(fields: Mapping[str, str]) -> str:
    """The view's columns, each from ``fields`` (a column of the rows, a parameter bound
    once, a constant) or NULL."""
    return ", ".join(fields.get(column, "NULL") for column in _BATCH_VIEW_COLUMNS)


# Each kind's rows: the records as IngestRecord's fields (after the batch's own), the
# rollup rows as (kind, start, cell, verdict, n) or, weekly, (kind, start, cell, verdict,
# mon, ..., sun), the checks as (ms, online), their batch's.
_MEASUREMENT_SELECT = _select(
    {
        "kind": str(_MEASUREMENT_KIND),
        **{column: f"column{n}" for n, column in enumerate(_RECORD_COLUMNS, 1)},
        **dict.fromkeys(_MEASUREMENT_BATCH_COLUMNS, "?"),
    }
)
# Each rollup table's rows' columns in the view, in _ROLLUP_TABLES' order, and the select
# of a VALUES list of such rows.
_ROLLUP_COLUMNS = [
    ("kind", "start", "cell", "verdict", *view_counts) for *_, view_counts in _ROLLUP_TABLES
]
_ROLLUP_SELECTS = [
    _select({column: f"column{n}" for n, column in enumerate(columns, 1)})
    for columns in _ROLLUP_COLUMNS
]
_CHECK_SELECT = _select(
    {"kind": str(_CHECK_KIND), "measured_ms": "column1", "n": "column2"}
    | dict.fromkeys(_BATCH_COLUMNS, "?")
)
_SEQ_SELECT = "SELECT " + _select(
    {
        "kind": str(_SEQ_KIND),
        "measured_ms": "?",
        "record": "?",
        "agent_id": "?",
        "received_ms": "?",
        "body": "?",
        **dict.fromkeys(_STATUS_COLUMNS, "?"),
    }
)


def _select_values(select: str, rows: Sequence[Sequence[Any]]) -> str:
    row = "(" + ", ".join("?" * len(rows[0])) + ")"
    return f"SELECT {select} FROM (VALUES {', '.join([row] * len(rows))})"


def _multirow(
    head: str, tail: str, rows: Sequence[Sequence[Any]], first: Sequence[Any] = ()
) -> list[tuple[str, list[Any]]]:
    """``head VALUES (?, ...), ... tail`` statements of at most _SQLITE_CHUNK rows each,
    with their parameters flattened after ``first`` (those ``head`` takes): one statement,
    and one trip into SQLite, per chunk."""
    statements = []
    for start in range(0, len(rows), _SQLITE_CHUNK):
        chunk = rows[start : start + _SQLITE_CHUNK]
        row = "(" + ", ".join("?" * len(chunk[0])) + ")"
        values = [*first, *chain.from_iterable(chunk)]
        statements.append((f"{head} VALUES {', '.join([row] * len(chunk))} {tail}", values))
    return statements


class SQLiteWrites(Writes):
    def prepare_insert(self, records: Sequence[IngestRecord]) -> Any:
        batch = (self.received_ms, self.agent_id, self.asn, self.cc, self.batch_seq)
        return _multirow(_INSERT_MEASUREMENTS, _INSERT_MEASUREMENTS_TAIL, records, batch)

    def insert(self, driver: Any, prepared: Prepared) -> set[bytes] | None:
        """Without RETURNING, which cost a fifth of the insert: the row count says whether
        all went in, as they nearly always do. When some were there already, the new ones
        are the last rows inserted: measurements are never deleted, so SQLite gives each new
        row the table's largest rowid plus one, and the write lock (BEGIN IMMEDIATE) keeps
        other writers out meanwhile. No statement asks for the largest rowid beforehand:
        each would be one more wait for the GIL while the write lock is held."""
        db = cast("sqlite3.Connection", driver)
        count, last = 0, 0
        for statement, values in prepared.insert:
            cursor = db.execute(statement, values)
            if cursor.rowcount:
                count, last = count + cursor.rowcount, cursor.lastrowid or 0
        if count == len(prepared.records):
            return None
        if not count:
            return set()
        new = db.execute("SELECT id FROM measurements WHERE rowid > ?", (last - count,))
        return {row[0] for row in new}

    def prepare_rollups(self, records: Sequence[IngestRecord]) -> Any:
        return [
            statement
            for kind, rows in self._rollup_rows(records)
            for statement in _multirow(
                f"INSERT INTO {_BATCH_INPUT} ({', '.join(_ROLLUP_COLUMNS[kind])})", "", rows
            )
        ]

    def _rollup_rows(self, records: Sequence[IngestRecord]) -> list[tuple[int, list[Any]]]:
        """Each table's kind and rows, kind first in each row: hourly, weekly, all-time, in
        this order, as PostgreSQL's statement does; all-time rows have no start. Tables
        with no rows are left out."""
        tables = rollup_rows(records, self.cell_of, self.verdict_of)
        out = []
        for kind, ((_table, dims, *_), rows) in enumerate(zip(_ROLLUP_TABLES, tables, strict=True)):
            start = () if len(dims) == 3 else (None,)
            if rows:
                out.append((kind, [(kind, *start, *row) for row in rows]))
        return out

    def add_rollups(self, driver: Any, prepared: Any) -> None:
        db = cast("sqlite3.Connection", driver)
        for statement, values in prepared:
            db.execute(statement, values)

    def prepare_batch(
        self,
        records: Sequence[IngestRecord],
        checks: Sequence[tuple[int, bool]],
        seq: BatchSeq | None = None,
    ) -> tuple[str, list[Any]] | None:
        """The whole batch, ``records`` (sorted by id and unique) and ``checks`` (sorted by
        time and unique), and ``seq`` made the agent's last, as one statement for
        :meth:`run_batch`; None if it would take more parameters than a statement can."""
        batch = (self.received_ms, self.agent_id, self.asn, self.cc)
        rollups = self._rollup_rows(records)
        parameters = len(records) * len(_RECORD_COLUMNS) + len(checks) * 2 + 2 * len(batch) + 11
        parameters += sum(len(rows) * len(_ROLLUP_COLUMNS[kind]) for kind, rows in rollups)
        if parameters > _SQLITE_MAX_PARAMETERS or not (records or checks):
            return None
        selects: list[str] = []
        values: list[Any] = []
        if seq is not None:
            # First: a replay is refused before any row is written.
            selects.append(_SEQ_SELECT)
            # In the view's column order: measured_ms, record, received_ms, agent_id, body,
            # then the status's.
            values += [seq.seq, seq.signature, self.received_ms, self.agent_id, seq.body]
            values += seq.status or UNKNOWN_STATUS
        if records:
            selects.append(_select_values(_MEASUREMENT_SELECT, records))
            values += [*batch, self.batch_seq, *chain.from_iterable(records)]
        for kind, rows in rollups:
            selects.append(_select_values(_ROLLUP_SELECTS[kind], rows))
            values += chain.from_iterable(rows)
        if checks:
            selects.append(_select_values(_CHECK_SELECT, checks))
            values += [*batch, *chain.from_iterable(checks)]
        return _BATCH_HEAD + " UNION ALL ".join(selects), values

    def run_batch(self, driver: Any, statement: tuple[str, list[Any]]) -> bool:
        """Runs a :meth:`prepare_batch` statement outside any transaction: True if it
        stored the batch, False if it stored nothing because some measurement was there
        already; :class:`ReplayedBatch` if a later batch of the agent was accepted."""
        try:
            cast("sqlite3.Connection", driver).execute(*statement)
        except sqlite3.IntegrityError as exc:
            if str(exc) == STORED_ALREADY:
                return False
            if str(exc) == REPLAYED:
                raise ReplayedBatch(f"batch of {self.agent_id!r}: {REPLAYED}") from None
            raise
        return True

"""Collector, storage: ingest's writes, statements run straight through the database drivers.

Ingest is the collector's hot path, and SQLAlchemy's per-row parameter handling cost more
than the databases' own inserts, so a batch's rows and rollup counts go to the driver
directly. Everything is prepared before the write transaction starts (:meth:`prepare`) and
the transaction only runs it: SQLite has one writer at a time, so the time a transaction
stays open bounds ingest, and each statement in it gives up the GIL while the database
works and must win it back from the threads checking the next batches. So on SQLite a
batch is first tried as one statement that SQLite commits by itself
(:meth:`SQLiteWrites.prepare_batch`), and takes the transaction only when that cannot be.

Rows go in sorted by id and rollups by key: concurrent ingests that overlap (PostgreSQL)
then take their row locks in the same order and cannot deadlock each other.
docs/design/003-storage.md has the argument.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, cast

import psycopg

from collector.storage.records import IngestRecord
from collector.storage.schema import DAY_MS, HOUR_MS, UNKNOWN_ASN, UNKNOWN_CC, week_start

# A batch's counts per rollup table, hourly, daily, weekly and all-time: each a sorted list
# of (*key, n), the key being the table's primary key.
RollupRows = tuple[list[tuple[Any, ...]], ...]


def rollup_rows(
    records: Sequence[IngestRecord], cell_of: Mapping[str, int], verdict_of: Mapping[str, int]
) -> RollupRows:
    """The counts ``records`` add to the four rollup tables; ``cell_of`` gives the cell id
    of each record's domain in the batch's one network, ``verdict_of`` each verdict's id."""
    hourly = Counter(
        (r.measured_ms - r.measured_ms % HOUR_MS, cell_of[r.domain], verdict_of[r.verdict])
        for r in records
    )
    daily: Counter[tuple[Any, ...]] = Counter()
    totals: Counter[tuple[Any, ...]] = Counter()
    for (hour, cell, verdict), n in hourly.items():
        daily[(hour - hour % DAY_MS, cell, verdict)] += n
        totals[(cell, verdict)] += n
    # From the daily counts: fewer keys than the hourly ones, the same sums.
    weekly: Counter[tuple[Any, ...]] = Counter()
    for (day, cell, verdict), n in daily.items():
        weekly[(week_start(day), cell, verdict)] += n
    return tuple(
        [(*key, n) for key, n in sorted(counts.items())]
        for counts in (hourly, daily, weekly, totals)
    )


@dataclass(frozen=True)
class Prepared:
    """One batch's statements, ready to run: ``insert`` for its records, ``rollups`` for
    their counts, on the assumption that every record is new (recomputed if not)."""

    records: Sequence[IngestRecord]
    insert: Any
    rollups: Any


class Writes:
    """The ingest statements of one backend."""

    def __init__(
        self,
        agent_id: str,
        asn: int | None,
        cc: str | None,
        received_ms: int,
        cell_of: Mapping[str, int],
        verdict_of: Mapping[str, int],
    ) -> None:
        """``cell_of`` gives the cell id of each domain of the batch in its one network,
        ``verdict_of`` the id of each verdict (IdMap.create made any that were missing)."""
        self.agent_id, self.asn, self.cc, self.received_ms = agent_id, asn, cc, received_ms
        self.cell_of, self.verdict_of = cell_of, verdict_of

    def prepare(self, records: Sequence[IngestRecord]) -> Prepared:
        """``records`` sorted by id and unique."""
        return Prepared(records, self.prepare_insert(records), self.prepare_rollups(records))

    def prepare_rollups(self, records: Sequence[IngestRecord]) -> Any:
        raise NotImplementedError

    def prepare_insert(self, records: Sequence[IngestRecord]) -> Any:
        raise NotImplementedError

    def run(self, driver: Any, prepared: Prepared) -> set[bytes] | None:
        """Inserts the new records and adds them to the rollups: None if every record was
        new (as nearly always), else the ids it inserted. No set of ids is built for the
        common case: this runs in the write transaction, which other batches wait for."""
        records = prepared.records
        if not records:
            return None
        inserted = self.insert(driver, prepared)
        if inserted is None:
            rollups = prepared.rollups
        elif inserted:  # some were stored already: count only the others
            rollups = self.prepare_rollups([r for r in records if r.key in inserted])
        else:
            return inserted
        self.add_rollups(driver, rollups)
        return inserted

    def insert(self, driver: Any, prepared: Prepared) -> set[bytes] | None:
        """The ids inserted, or None if that is all of them."""
        raise NotImplementedError

    def add_rollups(self, driver: Any, prepared: Any) -> None:
        raise NotImplementedError


def cell_network(asn: int | None, cc: str | None) -> tuple[int, str]:
    """A network as a cell names it: cells cannot hold NULL, so an unknown network has its
    own stand-ins."""
    return (UNKNOWN_ASN if asn is None else asn, UNKNOWN_CC if cc is None else cc)


# -- SQLite ------------------------------------------------------------------------------

# The batch's measurements as rows of IngestRecord's own fields, the batch's agent, network
# and time bound once per statement: SQLite binds each parameter while holding the GIL and,
# in the write transaction, the write lock, and IngestRecords flatten straight into rows.
_RECORD_COLUMNS = tuple("id" if name == "key" else name for name in IngestRecord._fields)
_BATCH_COLUMNS = ("received_ms", "agent_id", "asn", "cc")
_INSERT_MEASUREMENTS = (
    f"INSERT INTO measurements ({', '.join(_RECORD_COLUMNS + _BATCH_COLUMNS)}) "
    f"SELECT {', '.join(f'column{n}' for n in range(1, len(_RECORD_COLUMNS) + 1))}, "
    f"{', '.join('?' * len(_BATCH_COLUMNS))} FROM ("
)
# WHERE: else SQLite reads ON CONFLICT as a join's ON.
_INSERT_MEASUREMENTS_TAIL = ") WHERE true ON CONFLICT DO NOTHING"
# Rows per statement: 500 rows of 6 columns stay well under SQLite's 32,766 variables.
_SQLITE_CHUNK = 500

# A batch's four rollup upserts as one statement: its counts for all four tables (from
# rollup_rows, as on PostgreSQL), tagged with their table, go into this view, whose trigger
# upserts each row into its table. The write transaction holds SQLite's only write lock,
# and each statement in it gives up the GIL and must win it back from the threads checking
# the next batches (~1 ms each under load): one statement rather than four shortens every
# batch's turn. The rows go table by table, so each table's new pages are still allocated
# together (a trigger writing all four tables per hourly count scattered them, and the
# 7-day blocking query over a table so filled was ~20 ms slower). TEMP, so every
# connection makes its own (collector.storage.engine) and no migration is involved.
_ROLLUP_INPUT = "ingest_rollups"
_ROLLUP_TABLES = (
    ("rollups", ("hour_ms", "cell", "verdict")),
    ("daily_rollups", ("day_ms", "cell", "verdict")),
    ("weekly_rollups", ("week_ms", "cell", "verdict")),
    ("rollup_totals", ("cell", "verdict")),
)


def _sqlite_rollup_trigger() -> tuple[str, ...]:
    upserts = []
    for table_index, (table, dims) in enumerate(_ROLLUP_TABLES):
        values = ["NEW.cell", "NEW.verdict", "NEW.n"]
        if len(dims) == 3:
            values.insert(0, "NEW.start")
        keys = ", ".join(dims)
        upserts.append(
            f"INSERT INTO {table} ({keys}, count) SELECT {', '.join(values)} "
            f"WHERE NEW.kind = {table_index} "
            f"ON CONFLICT ({keys}) DO UPDATE SET count = count + excluded.count;"
        )
    return (
        f"CREATE TEMP VIEW IF NOT EXISTS {_ROLLUP_INPUT} AS "
        "SELECT 0 AS kind, 0 AS start, 0 AS cell, 0 AS verdict, 0 AS n WHERE 0",
        f"CREATE TEMP TRIGGER IF NOT EXISTS {_ROLLUP_INPUT}_add "
        f"INSTEAD OF INSERT ON {_ROLLUP_INPUT} BEGIN {' '.join(upserts)} END",
    )


SQLITE_ROLLUP_TRIGGER = _sqlite_rollup_trigger()

# A whole batch as one statement, run outside any transaction: SQLite makes a lone statement
# its own transaction, begun and committed inside the one call that runs it, so the write
# turn gives up the GIL once (plus the statement's preparation when not cached) rather
# than for BEGIN IMMEDIATE, each statement, and COMMIT, winning it back each time from the
# threads checking the next batches while every other batch waits for the write lock. The
# batch's measurements, rollup counts and connectivity checks go into this TEMP view, each
# row tagged with its kind, and its triggers write each row to its table. The counts
# assume every measurement is new: a measurement stored already makes the trigger abort
# the statement, undoing all of it, and the batch is written again the long way
# (``Writes.run``). The abort's message is how it is told apart from a refused batch.
_BATCH_INPUT = "ingest_batch"
_MEASUREMENT_KIND = len(_ROLLUP_TABLES)
_CHECK_KIND = _MEASUREMENT_KIND + 1
STORED_ALREADY = "netsonde: a measurement is stored already"
_BATCH_VIEW_COLUMNS = ("kind", *_RECORD_COLUMNS, *_BATCH_COLUMNS, "start", "cell", "n")
_MEASUREMENT_COLUMNS = _RECORD_COLUMNS + _BATCH_COLUMNS
_CHECK_COLUMNS = ("ms", "online", *_BATCH_COLUMNS)


def _sqlite_batch_trigger() -> tuple[str, ...]:
    new = ", ".join(f"NEW.{column}" for column in _MEASUREMENT_COLUMNS)
    upserts = []
    for table_index, (table, dims) in enumerate(_ROLLUP_TABLES):
        values = ["NEW.cell", "NEW.verdict", "NEW.n"]
        if len(dims) == 3:
            values.insert(0, "NEW.start")
        keys = ", ".join(dims)
        upserts.append(
            f"INSERT INTO {table} ({keys}, count) SELECT {', '.join(values)} "
            f"WHERE NEW.kind = {table_index} "
            f"ON CONFLICT ({keys}) DO UPDATE SET count = count + excluded.count;"
        )
    # A check's time and state ride in measured_ms and n.
    check = "NEW.measured_ms, NEW.n, " + ", ".join(f"NEW.{c}" for c in _BATCH_COLUMNS)
    view = "TEMP VIEW IF NOT EXISTS"
    trigger = f"TEMP TRIGGER IF NOT EXISTS {_BATCH_INPUT}"
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
    )


SQLITE_BATCH_TRIGGER = _sqlite_batch_trigger()
_BATCH_HEAD = f"INSERT INTO {_BATCH_INPUT} ({', '.join(_BATCH_VIEW_COLUMNS)}) "
# SQLite's limit on a statement's parameters (SQLITE_MAX_VARIABLE_NUMBER, since 3.32).
_SQLITE_MAX_PARAMETERS = 32_766


def _select(fields: Mapping[str, str]) -> str:
    """The view's columns, each from ``fields`` (a column of the rows, a parameter bound
    once, a constant) or NULL."""
    return ", ".join(fields.get(column, "NULL") for column in _BATCH_VIEW_COLUMNS)


# Each kind's rows: the records as IngestRecord's fields (after the batch's own), the
# rollup rows as (kind, start, cell, verdict, n), the checks as (ms, online), their batch's.
_MEASUREMENT_SELECT = _select(
    {
        "kind": str(_MEASUREMENT_KIND),
        **{column: f"column{n}" for n, column in enumerate(_RECORD_COLUMNS, 1)},
        **dict.fromkeys(_BATCH_COLUMNS, "?"),
    }
)
_ROLLUP_SELECT = _select(
    {"kind": "column1", "start": "column2", "cell": "column3", "verdict": "column4", "n": "column5"}
)
_CHECK_SELECT = _select(
    {"kind": str(_CHECK_KIND), "measured_ms": "column1", "n": "column2"}
    | dict.fromkeys(_BATCH_COLUMNS, "?")
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
        batch = (self.received_ms, self.agent_id, self.asn, self.cc)
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
        head = f"INSERT INTO {_ROLLUP_INPUT} (kind, start, cell, verdict, n)"
        return _multirow(head, "", self._rollup_rows(records))

    def _rollup_rows(self, records: Sequence[IngestRecord]) -> list[tuple[Any, ...]]:
        """(kind, start, cell, verdict, n): hourly, daily, weekly, all-time, in this order,
        as PostgreSQL's statement does; all-time rows have no start."""
        return [
            (kind, *row) if len(row) == 4 else (kind, None, *row)
            for kind, table_rows in enumerate(rollup_rows(records, self.cell_of, self.verdict_of))
            for row in table_rows
        ]

    def add_rollups(self, driver: Any, prepared: Any) -> None:
        db = cast("sqlite3.Connection", driver)
        for statement, values in prepared:
            db.execute(statement, values)

    def prepare_batch(
        self, records: Sequence[IngestRecord], checks: Sequence[tuple[int, bool]]
    ) -> tuple[str, list[Any]] | None:
        """The whole batch, ``records`` (sorted by id and unique) and ``checks`` (sorted by
        time and unique), as one statement for :meth:`run_batch`; None if it would take
        more parameters than a statement can."""
        batch = (self.received_ms, self.agent_id, self.asn, self.cc)
        rollups = self._rollup_rows(records)
        parameters = len(records) * 6 + len(rollups) * 5 + len(checks) * 2 + 2 * len(batch)
        if parameters > _SQLITE_MAX_PARAMETERS or not (records or checks):
            return None
        selects, values = [], []
        if records:
            selects.append(_select_values(_MEASUREMENT_SELECT, records))
            values += [*batch, *chain.from_iterable(records)]
        if rollups:
            selects.append(_select_values(_ROLLUP_SELECT, rollups))
            values += chain.from_iterable(rollups)
        if checks:
            selects.append(_select_values(_CHECK_SELECT, checks))
            values += [*batch, *chain.from_iterable(checks)]
        return _BATCH_HEAD + " UNION ALL ".join(selects), values

    def run_batch(self, driver: Any, statement: tuple[str, list[Any]]) -> bool:
        """Runs a :meth:`prepare_batch` statement outside any transaction: True if it
        stored the batch, False if it stored nothing because some measurement was there
        already."""
        try:
            cast("sqlite3.Connection", driver).execute(*statement)
        except sqlite3.IntegrityError as exc:
            if str(exc) == STORED_ALREADY:
                return False
            raise
        return True


# -- PostgreSQL --------------------------------------------------------------------------

# The batch as one array per column, in psycopg's binary format: one short statement
# whatever the batch size, where a multi-row VALUES list (and bytea escaped as text) costs
# the driver more than the server.
_PG_NEW_MEASUREMENTS = """
    INSERT INTO measurements
        (id, measured_ms, received_ms, agent_id, asn, cc, domain, url, verdict, record)
    SELECT id, measured_ms, %(received_ms)s::bigint, %(agent_id)s::text,
           %(asn)s::bigint, %(cc)s::text, domain, url, verdict, record
    FROM unnest(%(id)s::bytea[], %(measured_ms)s::bigint[], %(domain)s::text[],
                %(url)s::text[], %(verdict)s::text[], %(record)s::bytea[])
         AS batch (id, measured_ms, domain, url, verdict, record)
    ORDER BY id
    ON CONFLICT DO NOTHING
    RETURNING id
"""
# The four rollup upserts of a batch as one statement, arrays in binary as above: separate
# statements cost PostgreSQL ingest a tenth of its throughput. Rows go in array order
# (Python's sorted keys), and every ingest runs this same statement, so all take rollup row
# locks in one order.
_PG_TIMED_ROLLUP = """
    {cte} AS (
        INSERT INTO {table} AS r ({start}, cell, verdict, count)
        SELECT start, cell, verdict, n
        FROM unnest(%({p}_start)s::bigint[], %({p}_cell)s::bigint[], %({p}_verdict)s::bigint[],
                    %({p}_n)s::bigint[]) WITH ORDINALITY AS b (start, cell, verdict, n, i)
        ORDER BY i
        ON CONFLICT ({start}, cell, verdict) DO UPDATE SET count = r.count + excluded.count
    )"""
_PG_ADD_ROLLUPS = (
    "WITH"
    + ",".join(
        _PG_TIMED_ROLLUP.format(cte=cte, table=table, start=start, p=prefix)
        for cte, table, start, prefix in (
            ("hourly", "rollups", "hour_ms", "h"),
            ("daily", "daily_rollups", "day_ms", "d"),
            ("weekly", "weekly_rollups", "week_ms", "w"),
        )
    )
    + """
    INSERT INTO rollup_totals AS r (cell, verdict, count)
    SELECT cell, verdict, n
    FROM unnest(%(t_cell)s::bigint[], %(t_verdict)s::bigint[], %(t_n)s::bigint[])
         WITH ORDINALITY AS b (cell, verdict, n, i)
    ORDER BY i
    ON CONFLICT (cell, verdict) DO UPDATE SET count = r.count + excluded.count
"""
)


class PostgresWrites(Writes):
    def prepare_insert(self, records: Sequence[IngestRecord]) -> Any:
        return {
            "id": [r.key for r in records],
            "measured_ms": [r.measured_ms for r in records],
            "domain": [r.domain for r in records],
            "url": [r.url for r in records],
            "verdict": [r.verdict for r in records],
            "record": [r.record for r in records],
            "received_ms": self.received_ms,
            "agent_id": self.agent_id,
            "asn": self.asn,
            "cc": self.cc,
        }

    def insert(self, driver: Any, prepared: Prepared) -> set[bytes] | None:
        with cast("psycopg.Connection[Any]", driver).cursor() as cursor:
            # The driver's own cursor, inside the same transaction: SQLAlchemy has no way
            # to ask psycopg for binary parameters.
            cursor.execute(_PG_NEW_MEASUREMENTS, prepared.insert, binary=True)
            rows = cursor.fetchall()
        if len(rows) == len(prepared.records):
            return None
        return {bytes(row[0]) for row in rows}

    def prepare_rollups(self, records: Sequence[IngestRecord]) -> Any:
        hourly, daily, weekly, totals = rollup_rows(records, self.cell_of, self.verdict_of)
        params: dict[str, Any] = {}
        for prefix, rows in (("h", hourly), ("d", daily), ("w", weekly)):
            params[f"{prefix}_start"] = [row[0] for row in rows]
            params[f"{prefix}_cell"] = [row[1] for row in rows]
            params[f"{prefix}_verdict"] = [row[2] for row in rows]
            params[f"{prefix}_n"] = [row[3] for row in rows]
        params["t_cell"] = [row[0] for row in totals]
        params["t_verdict"] = [row[1] for row in totals]
        params["t_n"] = [row[2] for row in totals]
        return params

    def add_rollups(self, driver: Any, prepared: Any) -> None:
        with cast("psycopg.Connection[Any]", driver).cursor() as cursor:
            cursor.execute(_PG_ADD_ROLLUPS, prepared, binary=True)

"""Collector storage: ingest's writes on PostgreSQL, statements run straight through psycopg.

PostgreSQL writes concurrently: one statement each for a batch's rows and its rollup
counts, arrays in binary, with rows and keys sorted so overlapping ingests lock alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import psycopg

from collector.storage.records import IngestRecord
from collector.storage.schema import WEEKDAYS
from collector.storage.writes import Prepared, Writes, rollup_rows

# The batch as one array per column, in psycopg's binary format: one short statement
# whatever the batch size, where a multi-row VALUES list (and bytea escaped as text) costs
# the driver more than the server.
_PG_NEW_MEASUREMENTS = """
    INSERT INTO measurements
        (id, measured_ms, received_ms, agent_id, asn, cc, domain, url, verdict, record,
         batch_seq, batch_index)
    SELECT id, measured_ms, %(received_ms)s::bigint, %(agent_id)s::text,
           %(asn)s::bigint, %(cc)s::text, domain, url, verdict, record,
           %(batch_seq)s::bigint, batch_index
    FROM unnest(%(id)s::bytea[], %(measured_ms)s::bigint[], %(domain)s::text[],
                %(url)s::text[], %(verdict)s::text[], %(record)s::bytea[],
                %(batch_index)s::integer[])
         AS batch (id, measured_ms, domain, url, verdict, record, batch_index)
    ORDER BY id
    ON CONFLICT DO NOTHING
    RETURNING id
"""
# The three rollup upserts of a batch as one statement, arrays in binary as above: separate
# statements cost PostgreSQL ingest a tenth of its throughput. Rows go in array order
# (Python's sorted keys), and every ingest runs this same statement, so all take rollup row
# locks in one order. A weekly row adds a count to each of its week's days.
_WEEKLY_DAYS = ", ".join(WEEKDAYS)
_PG_ADD_ROLLUPS = f"""
    WITH hourly AS (
        INSERT INTO rollups AS r (hour_ms, cell, verdict, count)
        SELECT start, cell, verdict, n
        FROM unnest(%(h_start)s::bigint[], %(h_cell)s::bigint[], %(h_verdict)s::bigint[],
                    %(h_n)s::bigint[]) WITH ORDINALITY AS b (start, cell, verdict, n, i)
        ORDER BY i
        ON CONFLICT (hour_ms, cell, verdict) DO UPDATE SET count = r.count + excluded.count
    ), weekly AS (
        INSERT INTO weekly_rollups AS r (week_ms, cell, verdict, {_WEEKLY_DAYS})
        SELECT start, cell, verdict, {_WEEKLY_DAYS}
        FROM unnest(%(w_start)s::bigint[], %(w_cell)s::bigint[], %(w_verdict)s::bigint[],
                    {", ".join(f"%(w_{day})s::bigint[]" for day in WEEKDAYS)})
             WITH ORDINALITY AS b (start, cell, verdict, {_WEEKLY_DAYS}, i)
        ORDER BY i
        ON CONFLICT (week_ms, cell, verdict) DO UPDATE SET
            {", ".join(f"{day} = r.{day} + excluded.{day}" for day in WEEKDAYS)}
    )
    INSERT INTO rollup_totals AS r (cell, verdict, count)
    SELECT cell, verdict, n
    FROM unnest(%(t_cell)s::bigint[], %(t_verdict)s::bigint[], %(t_n)s::bigint[])
         WITH ORDINALITY AS b (cell, verdict, n, i)
    ORDER BY i
    ON CONFLICT (cell, verdict) DO UPDATE SET count = r.count + excluded.count
"""


class PostgresWrites(Writes):
    def prepare_insert(self, records: Sequence[IngestRecord]) -> Any:
        return {
            "id": [r.key for r in records],
            "measured_ms": [r.measured_ms for r in records],
            "domain": [r.domain for r in records],
            "url": [r.url for r in records],
            "verdict": [r.verdict for r in records],
            "record": [r.record for r in records],
            "batch_index": [r.batch_index for r in records],
            "batch_seq": self.batch_seq,
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
        hourly, weekly, totals = rollup_rows(records, self.cell_of, self.verdict_of)
        # One list per column: (name, rows, column names) for each table.
        tables = (
            ("h", hourly, ("start", "cell", "verdict", "n")),
            ("w", weekly, ("start", "cell", "verdict", *WEEKDAYS)),
            ("t", totals, ("cell", "verdict", "n")),
        )
        return {
            f"{prefix}_{name}": [row[i] for row in rows]
            for prefix, rows, names in tables
            for i, name in enumerate(names)
        }

    def add_rollups(self, driver: Any, prepared: Any) -> None:
        with cast("psycopg.Connection[Any]", driver).cursor() as cursor:
            cursor.execute(_PG_ADD_ROLLUPS, prepared, binary=True)

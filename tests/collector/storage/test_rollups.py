"""The coarser rollups (``weekly_rollups``, a count per day of each week, and
``rollup_totals``) on SQLite and PostgreSQL equal a recount of the measurements after
ingest, duplicates and reclassification."""

from __future__ import annotations

from sqlalchemy import select

from agent.model.measurement import SiteMeasurement
from collector.storage import Storage
from collector.storage.schema import DAY_MS, WEEK_MS, rollup_totals, weekly_rollups
from tests.collector.storage.helpers import table_counts
from tests.collector.storage.records import AGENT
from tests.collector.storage.rollup_data import (
    DAYS,
    MONDAY,
    START,
    assert_rollups_recount,
    fill,
    spread,
)


def test_ingest_keeps_weekly_and_total_rollups_equal_to_a_recount(storage: Storage) -> None:
    fill(storage)
    assert_rollups_recount(storage)
    days = {key[0] for key in table_counts(storage, weekly_rollups)}
    assert days == {START + i * DAY_MS for i in range(DAYS)}
    with storage.engine.connect() as conn:
        weeks = set(conn.execute(select(weekly_rollups.c.week_ms).distinct()).scalars())
    assert weeks == {MONDAY - WEEK_MS, MONDAY, MONDAY + WEEK_MS}
    # Unknown networks are counted as ASN 0 and country "" here too.
    assert any(key[1:3] == (0, "") for key in table_counts(storage, rollup_totals))


def test_duplicates_add_nothing_to_weekly_and_total_rollups(storage: Storage) -> None:
    records = spread(120, seed=2)
    storage.ingest(AGENT, records[:50], 64500, "PK", 0)
    daily, totals = table_counts(storage, weekly_rollups), table_counts(storage, rollup_totals)
    # All duplicates, from another network: nothing moves.
    assert storage.ingest(AGENT, records[:50], 64501, "IR", 0).stored == []
    assert table_counts(storage, weekly_rollups) == daily
    assert table_counts(storage, rollup_totals) == totals
    # Half old, half new, one id twice within the batch: only the new ones count, once.
    result = storage.ingest(AGENT, [*records[25:], records[60]], 64500, "PK", 0)
    assert len(result.stored) == 70
    assert sum(table_counts(storage, rollup_totals).values()) == 120
    assert sum(table_counts(storage, weekly_rollups).values()) == 120
    assert_rollups_recount(storage)


def test_reclassify_rebuilds_weekly_and_total_rollups(storage: Storage) -> None:
    fill(storage, 200, seed=3)

    def everything_blocked(_m: SiteMeasurement) -> str:
        return "blocked"

    assert storage.reclassify(everything_blocked).changed == 200
    assert_rollups_recount(storage)
    assert {key[-1] for key in table_counts(storage, rollup_totals)} == {"blocked"}
    assert {key[-1] for key in table_counts(storage, weekly_rollups)} == {"blocked"}
    # Ingest after the rebuild adds to the rebuilt rows.
    fill(storage, 40, seed=4)
    assert_rollups_recount(storage)

"""What the rollup tests fill a store with (records spread over two weeks, a few domains,
networks and verdicts), and what they compare the store with."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from alembic.config import Config
from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection, Engine

from agent.model.measurement import new_measurement_id
from collector.storage import IngestRecord, Storage
from collector.storage.blocking import BlockingRow, dominant
from collector.storage.engine import MIGRATIONS
from collector.storage.schema import (
    DAY_MS,
    HOUR_MS,
    WEEK_MS,
    rollup_totals,
    rollups,
    verdicts,
    week_start,
    weekly_rollups,
)
from collector.storage.schema import cells as cells_table
from tests.collector.storage.helpers import counts_from_rows, daily_counts_from_rows, table_counts
from tests.collector.storage.records import AGENT, batch

START = 1_700_006_400_000 - 1_700_006_400_000 % DAY_MS  # a UTC midnight (a Wednesday)
# Over two weeks, so windows take whole ISO weeks, partial ones and the days around them.
DAYS = 16
MONDAY = week_start(START) + WEEK_MS  # the first week boundary inside the data
NETWORKS = [(64500, "PK"), (64501, "IR"), (64502, "PK"), (None, None)]
DOMAINS = [f"site{i}.example" for i in range(7)]
VERDICTS = ["ok", "ok", "down", "dns.injected", "tls.reset"]


def spread(n: int, seed: int) -> list[IngestRecord]:
    """``n`` records at random times over DAYS days, domains and verdicts drawn from a few."""
    rng = random.Random(seed)
    template = batch(1)[0]
    out = []
    for _ in range(n):
        at = START + rng.randrange(DAYS * DAY_MS)
        domain = rng.choice(DOMAINS)
        out.append(
            IngestRecord.make(
                id=new_measurement_id(at),
                measured_ms=at,
                domain=domain,
                url=f"https://{domain}/",
                verdict=rng.choice(VERDICTS),
                record=template.record,
            )
        )
    return out


def fill(store: Storage, n: int = 600, seed: int = 1) -> None:
    records = spread(n, seed)
    for i, (asn, cc) in enumerate(NETWORKS):
        store.ingest(AGENT, records[i :: len(NETWORKS)], asn, cc, 0)


ROLLUP_TABLES: list[Table] = [rollups, weekly_rollups, rollup_totals]


@contextmanager
def migrated(
    engine: Engine, move: Callable[[Config, str], None], revision: str
) -> Iterator[Connection]:
    """Runs alembic's ``move`` (upgrade or downgrade) to ``revision`` in a transaction,
    which stays open for the caller to look at the tables so left."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        move(config, revision)
        yield conn


def assert_rollups_recount(store: Storage) -> None:
    assert table_counts(store, weekly_rollups) == daily_counts_from_rows(store)
    assert table_counts(store, rollup_totals) == counts_from_rows(store)
    assert store.rollup_counts() == counts_from_rows(store)


def hourly_blocking(
    store: Storage,
    cc: str | None = None,
    asn: int | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[BlockingRow]:
    """The matrix as the hourly-only implementation computed it: the reference, sorted by
    the cells' names."""
    r, c = rollups.c, cells_table.c
    where = []
    if asn is not None:
        where.append(c.asn == asn)
    if cc is not None:
        where.append(c.cc == cc)
    if since_ms is not None:
        where.append(r.hour_ms >= since_ms - since_ms % HOUR_MS)
    if until_ms is not None:
        where.append(r.hour_ms < until_ms)
    v = verdicts.c
    dims = (c.domain, c.asn, c.cc, v.name)
    query = (
        select(*dims, func.sum(r.count))
        .select_from(rollups.join(cells_table, c.id == r.cell).join(verdicts, v.id == r.verdict))
        .where(*where)
        .group_by(*dims)
        .order_by(v.name)
    )
    cells: dict[tuple[str, int, str], dict[str, int]] = {}
    with store.engine.connect() as conn:
        for d, a, c, v, n in conn.execute(query):
            cells.setdefault((d, int(a), c), {})[v] = int(n)
    return [
        BlockingRow(d, a, c, counts, sum(counts.values()), dominant(counts))
        for (d, a, c), counts in sorted(cells.items())
    ]

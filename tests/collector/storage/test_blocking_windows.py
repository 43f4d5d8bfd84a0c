"""The blocking matrix on SQLite and PostgreSQL, read from the coarser rollups, equals the
sum of the hourly rows for every kind of window, also when read in pipelined slices of
cells and when a slice fails."""

from __future__ import annotations

import random
from typing import Any

import psycopg
import pytest

from collector.storage import Storage, blocking
from collector.storage.blocking import dominant
from collector.storage.schema import DAY_MS, HOUR_MS, WEEK_MS
from tests.collector.storage.rollup_data import DAYS, MONDAY, START, fill, hourly_blocking


def windows() -> list[tuple[int | None, int | None]]:
    """Windows of every shape over the data: unbounded, empty, within an hour, across
    midnights and week boundaries, whole weeks with edge days and hours, and random ones."""
    end = START + DAYS * DAY_MS
    bounds = [
        None,
        START - DAY_MS,  # before all data
        START,
        START + 1,
        START + HOUR_MS,
        START + DAY_MS,  # a midnight
        START + DAY_MS + 5 * HOUR_MS + 17,
        START + 3 * DAY_MS - 1,
        START + 3 * DAY_MS,
        MONDAY - HOUR_MS,
        MONDAY,  # a week boundary
        MONDAY + 2 * HOUR_MS,
        MONDAY + WEEK_MS,  # the next one: [MONDAY, this) is one whole week
        MONDAY + WEEK_MS + DAY_MS + 3 * HOUR_MS + 1,
        end - DAY_MS + 23 * HOUR_MS,
        end - 1,
        end,
        end + 7 * DAY_MS,  # after all data
    ]
    out = [
        (since, until)
        for since in bounds
        for until in bounds
        if since is None or until is None or since <= until
    ]
    # Seven days from each day of a week, and two days from each: the days of one or two
    # weeks, with or without the hours around them.
    for day in range(7):
        for hours in (0, 5):
            since = START + day * DAY_MS + hours * HOUR_MS
            out += [(since, since + 7 * DAY_MS), (since, since + 2 * DAY_MS)]
    rng = random.Random(8)
    for _ in range(40):
        start = START + rng.randrange(-DAY_MS, (DAYS + 1) * DAY_MS)
        out.append((start, start + rng.randrange(3 * DAY_MS)))
        # Week-long and longer: whole weeks plus edge days and hours.
        out.append((start, start + rng.randrange(6 * DAY_MS, 12 * DAY_MS)))
    return out


@pytest.mark.parametrize(
    ("cc", "asn"), [(None, None), ("PK", None), (None, 64501), ("", 0), ("RU", None)]
)
def test_blocking_over_any_window_equals_the_hourly_sum(
    storage: Storage, cc: str | None, asn: int | None
) -> None:
    fill(storage, 900, seed=7)
    nonempty = 0
    for since, until in windows():
        expected = hourly_blocking(storage, cc, asn, since, until)
        got = storage.blocking(cc=cc, asn=asn, since_ms=since, until_ms=until)
        assert got == expected, (since, until)
        # The order matters too: the JSON lists counts in this order.
        assert [list(row.counts) for row in got] == [list(row.counts) for row in expected]
        nonempty += bool(expected)
    if cc != "RU":  # no such network: every window is empty
        assert nonempty > len(windows()) // 2


def test_blocking_in_pipelined_slices_of_cells_equals_the_hourly_sum(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL reads a large unfiltered matrix in slices of cell ids, each sent before
    the rows of the one before are built; with slices of 2 cells the 28 cells here take 4."""
    monkeypatch.setattr(blocking, "_SLICE_CELLS", 2)
    slices_used: list[int] = []
    fetched = blocking._fetched

    def counting(*args: Any) -> Any:
        slices_used.append(len(args[-1]))
        return fetched(*args)

    monkeypatch.setattr(blocking, "_fetched", counting)
    fill(storage, 900, seed=7)
    assert storage.blocking() == hourly_blocking(storage)  # the id map now knows every cell
    slices_used.clear()
    for since, until in windows():
        expected = hourly_blocking(storage, since_ms=since, until_ms=until)
        got = storage.blocking(since_ms=since, until_ms=until)
        assert got == expected, (since, until)
        assert [list(row.counts) for row in got] == [list(row.counts) for row in expected]
    postgres = storage.engine.dialect.name == "postgresql"
    # Every statement that ran was sliced on PostgreSQL, and none on SQLite.
    assert slices_used
    assert set(slices_used) == ({4} if postgres else {1})


def test_a_slice_that_fails_leaves_the_store_usable(
    pg_storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slice's statement failing in the pipeline, or the row loop failing while the next
    slice is queued: the error reaches the caller, and the connection goes back to the
    pool fit for the next call."""
    storage = pg_storage
    monkeypatch.setattr(blocking, "_SLICE_CELLS", 2)
    fill(storage, 300, seed=3)
    expected = storage.blocking()  # the id map now knows every cell
    sent = blocking._sent
    calls: list[tuple[int, int]] = []

    def failing_third(driver: Any, sql: str, params: Any, cells: tuple[int, int]) -> Any:
        calls.append(cells)
        return sent(driver, "SELECT 1/0" if len(calls) == 3 else sql, params, cells)

    monkeypatch.setattr(blocking, "_sent", failing_third)
    with pytest.raises(psycopg.errors.DivisionByZero):
        storage.blocking(since_ms=START)
    monkeypatch.setattr(blocking, "_sent", sent)
    assert storage.blocking() == expected

    def broken(counts: dict[str, int]) -> str | None:
        raise RuntimeError("the loop failed")

    monkeypatch.setattr(blocking, "dominant", broken)  # called in the first slice's loop
    with pytest.raises(RuntimeError, match="the loop failed"):
        storage.blocking(since_ms=START)
    monkeypatch.setattr(blocking, "dominant", dominant)
    assert storage.blocking() == expected
    assert storage.blocking(since_ms=START) == hourly_blocking(storage, since_ms=START)

"""Collector incidents: the windows of counts the threshold logic needs, read from storage.

Counts come from the hourly rollups, never from ``measurements``: only the cells (domain,
network) with a blocking verdict in the period are read, grouped into windows by the
database. The rollups do not know agents, so the distinct agents are read from
``measurements`` afterwards, and only for the domains and period of windows that already
cross the count and share thresholds: a few rows per blocked window, none for a clean site.
Both statements run in one read snapshot, so the agents belong to the counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, cast, func, select
from sqlalchemy.engine import Connection

from collector.incidents.model import NOT_BLOCKING
from collector.incidents.runs import Window
from collector.storage import Storage
from collector.storage.engine import READ_ONLY
from collector.storage.schema import UNKNOWN_ASN, cells, measurements, rollups, verdicts
from collector.thresholds import Thresholds

__all__ = ["read_windows"]


@contextmanager
def _snapshot(storage: Storage) -> Iterator[Connection]:
    with storage.engine.connect() as conn:
        options: dict[str, Any] = {READ_ONLY: True}
        if conn.dialect.name == "postgresql":
            # One snapshot for both statements (SQLite's read transaction is one already).
            options["isolation_level"] = "REPEATABLE READ"
        conn = conn.execution_options(**options)
        with conn.begin():
            yield conn


def read_windows(
    storage: Storage,
    lo: int,
    hi: int,
    t: Thresholds,
    *,
    domain: str | None = None,
    asn: int | None = None,
) -> list[Window]:
    """The windows with data in [lo, hi) (window-aligned ``lo``, hour-aligned ``hi``) of the
    domains and networks that have a blocking verdict there, with the agents of those whose
    counts could make them blocked."""
    with _snapshot(storage) as conn:
        windows = _counted(conn, lo, hi, t.window_ms, domain, asn)
        likely = [w for w in windows if _may_block(w, t)]
        if likely:
            _add_agents(conn, likely, t.window_ms, domain, asn)
    return windows


def _may_block(window: Window, t: Thresholds) -> bool:
    blocking, considered = window.blocking(), window.considered()
    return blocking >= t.min_blocking and blocking >= t.min_share * considered


def _cell_filter(domain: str | None, asn: int | None) -> list[ColumnElement[bool]]:
    c = cells.c
    where: list[ColumnElement[bool]] = []
    if domain is not None:
        where.append(c.domain == domain)
    if asn is not None:
        where.append(c.asn == asn)
    return where


def _counted(
    conn: Connection, lo: int, hi: int, window_ms: int, domain: str | None, asn: int | None
) -> list[Window]:
    r, c, v = rollups.c, cells.c, verdicts.c
    in_period = [r.hour_ms >= lo, r.hour_ms < hi]
    blocked_cells = (
        select(r.cell)
        .join(verdicts, v.id == r.verdict)
        .where(*in_period, v.name.not_in(sorted(NOT_BLOCKING)))
        .distinct()
    )
    if where := _cell_filter(domain, asn):
        blocked_cells = blocked_cells.where(r.cell.in_(select(c.id).where(*where)))
    start = cast((r.hour_ms // window_ms) * window_ms, BigInteger).label("start")
    query = (
        select(c.domain, c.asn, c.cc, start, v.name, cast(func.sum(r.count), BigInteger))
        .select_from(rollups.join(cells, c.id == r.cell).join(verdicts, v.id == r.verdict))
        .where(*in_period, r.cell.in_(blocked_cells))
        .group_by(c.domain, c.asn, c.cc, start, v.name)
    )
    windows: dict[tuple[str, int, int], Window] = {}
    for name, network, cc, at, verdict, n in conn.execute(query):
        key = (name, int(network), int(at))
        window = windows.get(key)
        if window is None:
            window = windows[key] = Window(name, int(network), int(at))
        window.counts[verdict] += int(n)
        window.ccs.add(cc)
    return list(windows.values())


def _add_agents(
    conn: Connection, likely: Sequence[Window], window_ms: int, domain: str | None, asn: int | None
) -> None:
    """Sets each window's agents: the distinct agents with a blocking verdict in it."""
    m = measurements.c
    by_key = {(w.domain, w.asn, w.start_ms): w for w in likely}
    lo = min(w.start_ms for w in likely)
    hi = max(w.start_ms for w in likely) + window_ms
    network = func.coalesce(m.asn, UNKNOWN_ASN)
    start = cast((m.measured_ms // window_ms) * window_ms, BigInteger)
    where = [m.measured_ms >= lo, m.measured_ms < hi, m.verdict.not_in(sorted(NOT_BLOCKING))]
    # One domain's measurements are found by their index. Without a domain, by time: a list
    # of the likely windows' domains led SQLite to read each one's rows of all time by the
    # domain index (2.9 s for a week of 1M measurements, where the week by time takes 0.1 s).
    if domain is not None:
        where.append(m.domain == domain)
    if asn is not None:
        where.append(m.asn.is_(None) if asn == UNKNOWN_ASN else m.asn == asn)
    query = select(m.domain, network, start, m.agent_id).where(*where).distinct()
    for name, at_network, at, agent in conn.execute(query):
        window = by_key.get((name, int(at_network), int(at)))
        if window is not None:
            window.agents.add(agent)

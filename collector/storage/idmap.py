"""Collector storage: names the rollups count by, as integer ids (cells and verdicts).

The rollup tables count by a cell id, standing for (domain, asn, cc) (schema ``cells``,
migration 0007), and a verdict id, standing for a verdict's name (``verdicts``, 0008). An
id never changes once given, so each process keeps both directions in memory: ingest asks
the database only for names it has not met, and a query only for the names of ids it has
not met. Entries are only ever added, so readers need no lock; writers take one so that
two threads do not both fetch the same rows.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Table, select, true, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from collector.storage.schema import cells, verdicts

CellKey = tuple[str, int, str]  # domain, asn, cc (UNKNOWN_ASN, UNKNOWN_CC when unknown)
# Names per statement: at most three parameters each, well under SQLite's 32,766.
_CHUNK = 1000
_Name = TypeVar("_Name", CellKey, str)


class IdMap(Generic[_Name]):
    """The ids of one name table's rows: a name is its ``columns`` (one column: the value
    itself, else a tuple of them)."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self._table = table
        self._columns = [table.c[name] for name in columns]
        self._ids: dict[_Name, int] = {}
        self._names: dict[int, _Name] = {}
        self._newest = 0  # the largest id met
        # Every id met so far in its name's order, and each id's place in that order.
        self._order: tuple[list[int], dict[int, int]] = ([], {})
        self._lock = threading.Lock()

    def unknown(self, names: Iterable[_Name]) -> list[_Name]:
        """The names this process has no id for yet, sorted."""
        ids = self._ids
        return sorted({name for name in names if name not in ids})

    def ids(self) -> Mapping[_Name, int]:
        """Every id met so far, by name: complete for names :meth:`create` was given."""
        return self._ids

    def create(self, conn: Connection, names: Collection[_Name]) -> None:
        """Gives ``names`` ids, in the write transaction ``conn``: new ones are inserted (in
        order, so concurrent writers lock them alike), then all of them read back."""
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        keys = [column.key for column in self._columns]
        ordered = sorted(names)
        with self._lock:
            for start in range(0, len(ordered), _CHUNK):
                chunk = ordered[start : start + _CHUNK]
                rows = [dict(zip(keys, self._values(name), strict=True)) for name in chunk]
                conn.execute(insert(self._table).values(rows).on_conflict_do_nothing())
                self._remember(conn.execute(self._select(self._named(chunk))))

    def names(self, conn: Connection, ids: Iterable[int]) -> Mapping[int, _Name]:
        """Every name met so far, by id: complete for ``ids``, which must exist."""
        names = self._names
        missing = set(ids).difference(names)
        if missing:
            table_id = self._table.c.id
            with self._lock:
                # Ids grow as names are added: those above the largest known are read in one
                # range, and any still missing below it (PostgreSQL may commit a smaller id
                # later) by their ids.
                self._remember(conn.execute(self._select(table_id > self._newest)))
                rest = sorted(id_ for id_ in missing if id_ not in names)
                for start in range(0, len(rest), _CHUNK):
                    chunk = rest[start : start + _CHUNK]
                    self._remember(conn.execute(self._select(table_id.in_(chunk))))
        return names

    def all_names(self, conn: Connection) -> Mapping[int, _Name]:
        """Every name in the table as ``conn`` sees it, read afresh: for a small table
        (verdicts), so that no later statement in the same snapshot needs to ask."""
        with self._lock:
            self._remember(conn.execute(self._select(true())))
        return self._names

    def newest(self) -> int:
        """The largest id met so far (0: none)."""
        return self._newest

    def in_name_order(self) -> list[int]:
        """Every id met so far, sorted by name: ids are given as names are first met, not
        in name order."""
        return self._sorted()[0]

    def places(self) -> Mapping[int, int]:
        """Every id met so far and its place in :meth:`in_name_order`."""
        return self._sorted()[1]

    def _sorted(self) -> tuple[list[int], dict[int, int]]:
        order = self._order
        if len(order[0]) != len(self._names):  # names were added since: sorted once more
            names = dict(self._names)  # a copy: another thread may add to it meanwhile
            ids = sorted(names, key=names.__getitem__)
            order = self._order = (ids, {id_: place for place, id_ in enumerate(ids)})
        return order

    def _values(self, name: _Name) -> tuple[Any, ...]:
        return name if isinstance(name, tuple) else (name,)

    def _named(self, chunk: list[_Name]) -> ColumnElement[bool]:
        if len(self._columns) == 1:
            return self._columns[0].in_(chunk)
        return tuple_(*self._columns).in_(chunk)

    def _select(self, where: ColumnElement[bool]) -> Any:
        return select(self._table.c.id, *self._columns).where(where)

    def _remember(self, rows: Iterable[Sequence[Any]]) -> None:
        single = len(self._columns) == 1
        for row in rows:
            name: Any = row[1] if single else tuple(row[1:])
            id_ = int(row[0])
            self._ids[name] = id_
            self._names[id_] = name
            self._newest = max(self._newest, id_)


def cell_ids() -> IdMap[CellKey]:
    return IdMap(cells, ("domain", "asn", "cc"))


def verdict_ids() -> IdMap[str]:
    return IdMap(verdicts, ("name",))

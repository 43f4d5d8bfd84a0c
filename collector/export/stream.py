"""Collector export: a query's measurements as a stream of JSON-line chunks, in bounded
memory.

:class:`ExportStream` reads one page of stored measurements at a time
(``collector.storage.export``: keyset pages, oldest first) and renders it into one chunk
of bytes, one line per measurement, in the format asked for. Its caller decides when to
ask for the next chunk, after writing the last one out: the command line writes to a file,
the API to a client that reads at its own pace, and neither holds more than a page or two,
whatever the period's size. Blocking: the API runs :meth:`ExportStream.next_chunk` on a
worker thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.wire.record import WireError, decode_measurement
from collector.evidence.query import EvidenceQuery
from collector.export.jsonl import jsonl_line
from collector.export.ooni import ooni_measurement, ooni_undecodable
from collector.storage import Storage
from collector.storage.export import Cursor, ExportFilter, export_page
from collector.storage.queries import StoredMeasurement, stop_if
from collector.traces import Lookup

__all__ = [
    "DEFAULT_PAGE_ROWS",
    "FORMATS",
    "MAX_EXPORTS",
    "ExportLimits",
    "ExportStream",
    "ooni_line",
]

# ~1 MB of records a page, 3-4 MB once rendered: a page's reading and rendering (~0.25 s)
# is short beside a client's patience, and its memory small beside the collector's.
DEFAULT_PAGE_ROWS = 1000
# Exports the API runs at once: each keeps a worker thread busy decoding for as long as it
# lasts (minutes for millions of rows), and the threads also serve every other query.
MAX_EXPORTS = 2
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode


def ooni_line(row: StoredMeasurement, *, operator: bool, lookup: Lookup | None = None) -> bytes:
    """The row as an OONI Web Connectivity line; none for a trace, which Web Connectivity
    has no keys for (docs/design/013-trace.md)."""
    obj: dict[str, Any]
    try:
        m = decode_measurement(row.record)
        if m.trace is not None:
            return b""
        obj = ooni_measurement(row, m, operator=operator)
    except WireError as exc:
        obj = ooni_undecodable(row, str(exc))
    return (_ENCODE(obj) + "\n").encode()


# The formats by name, as ``?format=`` and ``--format`` take them.
FORMATS: dict[str, Callable[..., bytes]] = {"jsonl": jsonl_line, "ooni": ooni_line}


@dataclass
class ExportLimits:
    """The API's bounds on exports: how many run at once, how many rows a page holds."""

    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_EXPORTS))
    page_rows: int = DEFAULT_PAGE_ROWS


class ExportStream:
    """The measurements of ``query`` in ``fmt``, a chunk per page; agent ids only for the
    ``operator``."""

    def __init__(
        self,
        storage: Storage,
        query: EvidenceQuery,
        fmt: str,
        *,
        operator: bool = False,
        page_rows: int = DEFAULT_PAGE_ROWS,
        lookup: Lookup | None = None,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r}: one of {', '.join(FORMATS)}")
        self._storage = storage
        self._where = ExportFilter(query.domain, query.asns, query.since_ms, query.until_ms)
        self._render = FORMATS[fmt]
        self._operator = operator
        self._lookup = lookup  # the AS of a trace's after_hop (collector.traces)
        self._page_rows = page_rows
        self._after: Cursor | None = None
        self._done = False
        self.rows = 0  # written so far

    def next_chunk(self, cancelled: threading.Event | None = None) -> bytes | None:
        """The next page's lines, or None once every row is out. :class:`QueryCancelled`
        once ``cancelled`` is set (looked at between rows: rendering is the main cost)."""
        if self._done:
            return None
        rows, self._after = export_page(
            self._storage.engine, self._where, self._after, self._page_rows, cancelled
        )
        self._done = self._after is None
        if not rows:
            return None
        lines = []
        for row in rows:
            stop_if(cancelled)
            lines.append(self._render(row, operator=self._operator, lookup=self._lookup))
        self.rows += len(rows)
        return b"".join(lines)

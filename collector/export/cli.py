"""Collector entry point, export: ``netsonde-collector export``.

Writes a query's measurements as JSON lines (``--format jsonl``, netsonde's rendering, or
``ooni``, OONI Web Connectivity measurements) to a file or stdout, a page at a time
(``collector.export.stream``), so any period exports in bounded memory. A file is written
beside its name and renamed into place when complete: an interrupted export never leaves
a truncated file that looks whole. A long export shows its progress on stderr.

``collector.cli`` imports this module when it builds its parser: only the standard library
at the top; the storage and the renderers are imported when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from collector.config import DEFAULT_DB, ConfigError, check_db_url

if TYPE_CHECKING:
    from collector.evidence.query import EvidenceQuery
    from collector.storage import Storage

    _Commands = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["export_parser", "run_export"]

PROG = "netsonde-collector"
EXPORT = "export"
PROGRESS_EVERY_S = 2.0


def export_parser(commands: _Commands) -> None:
    export = commands.add_parser(
        EXPORT,
        help="write measurements as JSON lines (netsonde's, or OONI Web Connectivity)",
        description="Stream the measurements of a domain, networks and period as one JSON "
        "object per line: netsonde's rendering (jsonl) or OONI's Web Connectivity format "
        "(ooni). Agent ids only with --with-agents.",
    )
    export.add_argument("--format", choices=("jsonl", "ooni"), default="jsonl")
    export.add_argument("--domain", help="only this host name (default: every domain)")
    export.add_argument(
        "--asn",
        action="append",
        default=[],
        metavar="ASN",
        help="only this network, 64500 or AS64500 (repeatable; default: every network)",
    )
    export.add_argument(
        "--since",
        default="0",
        metavar="TIME",
        help="from this time: ISO 8601 (UTC) or Unix ms (default: the start)",
    )
    export.add_argument(
        "--until",
        default=None,
        metavar="TIME",
        help="before this time: ISO 8601 (UTC) or Unix ms (default: now)",
    )
    export.add_argument("--out", default="-", metavar="FILE", help="where to write; - is stdout")
    export.add_argument(
        "--with-agents",
        action="store_true",
        help="add each measurement's agent id (identifies volunteers: not for publication)",
    )
    export.add_argument("--db", default=DEFAULT_DB, metavar="URL", help="the storage URL")


def _progress(out: IO[str]) -> Callable[[int, bool], None]:
    started = time.monotonic()
    last = [started]

    def show(rows: int, done: bool) -> None:
        now = time.monotonic()
        if done or now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            rate = rows / max(now - started, 1e-6)
            state = "exported" if done else "exporting:"
            print(
                f"{PROG}: {state} {rows:,} measurements ({rate:,.0f}/s, {now - started:.1f} s)",
                file=out,
                flush=True,
            )

    return show


def write_export(
    storage: Storage,
    query: EvidenceQuery,
    fmt: str,
    sink: IO[bytes],
    *,
    operator: bool = False,
    progress: Callable[[int, bool], None] | None = None,
) -> int:
    """Writes the export to ``sink``; how many measurements it held."""
    from collector.export.stream import ExportStream

    stream = ExportStream(storage, query, fmt, operator=operator)
    while (chunk := stream.next_chunk()) is not None:
        sink.write(chunk)
        if progress is not None:
            progress(stream.rows, False)
    if progress is not None:
        progress(stream.rows, True)
    return stream.rows


def _query(args: argparse.Namespace) -> EvidenceQuery:
    from collector.evidence.query import parse_query

    until = args.until if args.until is not None else str(int(time.time() * 1000) + 1)
    return parse_query(args.domain, _asns(args.asn), args.since, until)


def _asns(given: list[str]) -> list[str]:
    return [part for value in given for part in value.split(",") if part.strip()]


def _to_file(storage: Storage, query: EvidenceQuery, args: argparse.Namespace) -> int:
    path = Path(args.out)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as sink:
            write_export(
                storage,
                query,
                args.format,
                sink,
                operator=args.with_agents,
                progress=_progress(sys.stderr),
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return 0


def run_export(args: argparse.Namespace) -> int:
    try:
        url = check_db_url(args.db)
        query = _query(args)
    except (ConfigError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    from collector.storage import open_storage

    storage = open_storage(url)
    try:
        if args.out != "-":
            return _to_file(storage, query, args)
        write_export(
            storage,
            query,
            args.format,
            sys.stdout.buffer,
            operator=args.with_agents,
            progress=_progress(sys.stderr),
        )
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        # The reader stopped early (| head): nothing more to say, and nothing at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        print(f"{PROG}: error: {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        storage.close()
    return 0

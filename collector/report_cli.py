"""Collector entry point: ``netsonde-collector report``, and the incident thresholds that
``serve`` and ``report`` share (``--incident-*``, ``--outage-*``).

Only argparse and the standard library at import time, as ``collector.cli`` requires; the
storage and the renderer are imported when the command runs. ``report`` writes the same
bytes as ``GET /report`` for the same query, data and thresholds (one renderer,
``collector.reports``). A bad query or threshold: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from collector.config import ConfigError, check_db_url
from collector.thresholds import MAX_WINDOW_HOURS, Thresholds

if TYPE_CHECKING:
    _Commands = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["REPORT", "incident_options", "report_parser", "run_report", "thresholds_from_args"]

REPORT = "report"
PROG = "netsonde-collector"
_DEFAULT = Thresholds()


def incident_options(parser: argparse.ArgumentParser) -> None:
    """When stored results make an incident; docs/design/008-incidents.md explains each."""
    add = parser.add_argument
    add("--incident-window", type=int, default=_DEFAULT.window_hours, metavar="HOURS",
        help=f"length of the windows blocking is counted in, 1 to {MAX_WINDOW_HOURS} hours "
        f"(default {_DEFAULT.window_hours})")  # fmt: skip
    add("--incident-min-blocking", type=int, default=_DEFAULT.min_blocking, metavar="N",
        help="blocking measurements of a domain on a network that a window needs "
        f"(default {_DEFAULT.min_blocking})")  # fmt: skip
    add("--incident-min-share", type=float, default=_DEFAULT.min_share, metavar="F",
        help="share of the domain's measurements on that network that must show blocking "
        f"in the window, more than 0 and at most 1 (default {_DEFAULT.min_share:g})")  # fmt: skip
    add("--incident-min-agents", type=int, default=_DEFAULT.min_agents, metavar="N",
        help="distinct agents that must see blocking in the window "
        f"(default {_DEFAULT.min_agents})")  # fmt: skip
    add("--outage-min-agents", type=int, default=_DEFAULT.outage_min_agents, metavar="N",
        help="agents of a network offline together that make an outage incident "
        f"(default {_DEFAULT.outage_min_agents})")  # fmt: skip
    add("--outage-min-checks", type=int, default=_DEFAULT.outage_min_checks, metavar="N",
        help="offline connectivity checks in a row that make an outage incident "
        f"(default {_DEFAULT.outage_min_checks})")  # fmt: skip


def thresholds_from_args(args: argparse.Namespace) -> Thresholds:
    """The thresholds of :func:`incident_options`, or ConfigError naming the option."""
    try:
        return Thresholds(
            window_hours=args.incident_window,
            min_blocking=args.incident_min_blocking,
            min_share=args.incident_min_share,
            min_agents=args.incident_min_agents,
            outage_min_agents=args.outage_min_agents,
            outage_min_checks=args.outage_min_checks,
        )
    except ValueError as exc:
        raise ConfigError(f"incident thresholds: {exc}") from None


def report_parser(commands: _Commands, default_db: str) -> None:
    report = commands.add_parser(
        REPORT,
        help="write the HTML report for a domain, networks and period",
        description="Write the report GET /report serves for the same query: a summary "
        "sentence, the timeline, the incidents, each technique with its evidence in words, "
        "the networks and counts, the method and its limits, and the evidence bundle's id. "
        "One self-contained HTML file (it loads nothing), which prints to PDF from a "
        "browser. It names no agent.",
    )
    report.add_argument("--domain", metavar="NAME", help="the domain (default: every domain)")
    report.add_argument(
        "--asn", action="append", default=[], metavar="N",
        help="a network, as 64500 or AS64500 (repeatable; default: every network)",
    )  # fmt: skip
    report.add_argument("--since", required=True, metavar="TIME", help="ISO 8601 or Unix ms")
    report.add_argument("--until", required=True, metavar="TIME", help="ISO 8601 or Unix ms")
    report.add_argument(
        "--out", required=True, metavar="FILE", help="the HTML file to write ('-': stdout)"
    )
    report.add_argument("--db", default=default_db, metavar="URL", help="the storage URL")
    incident_options(report)


def run_report(args: argparse.Namespace) -> int:
    from collector.evidence.query import parse_query
    from collector.reports import report_query

    try:
        url = check_db_url(args.db)
        query = report_query(parse_query(args.domain, args.asn, args.since, args.until))
        thresholds = thresholds_from_args(args)
    except (ConfigError, ValueError) as exc:
        print(f"{PROG} {REPORT}: error: {exc}", file=sys.stderr)
        return 2

    from collector.reports import report_html
    from collector.storage import open_storage

    storage = open_storage(url)
    try:
        body = report_html(storage, query, thresholds)
    finally:
        storage.close()
    if args.out == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return 0
    try:
        Path(args.out).write_bytes(body)
    except OSError as exc:
        print(f"{PROG} {REPORT}: error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({len(body)} bytes): {query.describe()}")
    return 0

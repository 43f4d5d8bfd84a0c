"""Agent CLI: ``netsonde-agent trace URL`` and ``probe --trace``, where the censor sits.

Each target gets its site test first; a verdict with a trigger to repeat (``tcp.*`` by IP,
``tls.*`` by SNI, ``http.*`` by Host) is then traced (``agent.trace``) and the trace's
measurement is what prints, saves and uploads (the site test's verdict is repeated in it,
with the censor's position in the evidence); any other verdict is reported as measured.
``trace`` prints each trace's path as a table: TTL, router, what the trigger met, what the
benign swap met. Traces need ``CAP_NET_RAW``; without it this says so once, and the site
tests still run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from agent.cli.options import PROBE_OPTIONS, ip_address, positive_int

if TYPE_CHECKING:
    from rich.console import Console

    from agent.model.measurement import SiteMeasurement, Target
    from agent.trace import TraceConfig

__all__ = ["add_command", "open_trace", "print_paths"]

Measure = Callable[["Target"], Coroutine[Any, Any, "SiteMeasurement"]]
_NOT_FOR_TRACE = {"--throttle", "--protocols", "--trace", "--json"}
MAX_TTL = 32  # agent.wire.record.MAX_TRACE_ATTEMPTS holds two attempts per TTL up to here
TRACE_EPILOG = """\
Reading a trace: at each TTL the benign swap and the trigger went out with that IP TTL;
'exceeded' is a router's ICMP time-exceeded (the packet died there), 'rst', 'fin' and
'data' are answers, 'none' is silence. The censor sits after the last router that
answered below the first TTL where the trigger met what the benign did not. It cannot
prove more than the path this agent's packets took (paths back may differ), and a router
that never answers leaves a '*'. See the README's "Reading a trace".
"""


def _max_ttl(text: str) -> int:
    value = positive_int(text)
    if value > MAX_TTL:
        raise argparse.ArgumentTypeError(f"at most {MAX_TTL}")
    return value


def add_command(commands: Any, func: Callable[[argparse.Namespace], int]) -> None:
    parser = commands.add_parser(
        "trace",
        help="find where along the path a blocked target's censor sits",
        description="Measure each target; trace the blocked ones: repeat the trigger with\n"
        "IP TTL 1, 2, ... and print the routers and what the censor did at each.",
        epilog=TRACE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("targets", nargs="+", metavar="URL", help="URL, host name or @FILE")
    for flag, options, text in PROBE_OPTIONS:
        if flag not in _NOT_FOR_TRACE:
            parser.add_argument(flag, **options, help=text)
    parser.add_argument("--json", action="store_true", help="one JSON object per target")
    parser.add_argument(
        "--max-ttl", metavar="N", type=_max_ttl, default=16, help="highest TTL (default: 16)"
    )
    parser.add_argument(
        "--force", action="store_true",
        help="trace every target, blocked or not (by its SNI for https, its Host for http)",
    )  # fmt: skip
    add_reference(parser)
    parser.set_defaults(
        func=func, parser=parser, trace=True, paths=True, throttle=False, protocols=False
    )


def add_reference(parser: argparse.ArgumentParser) -> None:
    """``--reference``, for ``trace`` and ``probe`` alike."""
    parser.add_argument(
        "--reference", metavar="IP", type=ip_address, action="append", default=[],
        help="a host behind the same routers, the benign destination of IP triggers "
        "(repeatable, one per family; default: the --collector's addresses)",
    )  # fmt: skip


def trace_config(args: argparse.Namespace, fingerprints: Any) -> TraceConfig:
    from agent.trace import TraceConfig, collector_addresses

    given = tuple(getattr(args, "reference", ()))
    return TraceConfig(
        benign_name=args.benign_sni,
        references=given or collector_addresses(args.collector),
        max_ttl=getattr(args, "max_ttl", 16),
        window=min(args.timeout, 2.0),
        timeout=args.timeout,
        fingerprints=fingerprints,
    )


async def open_trace(args: argparse.Namespace, site: Measure, fingerprints: Any) -> Measure:
    """The measuring function of ``probe --trace`` and ``trace``: the site test, then the trace
    of a blocked target, one trace at a time (two at once would share the routers' ICMP)."""
    import asyncio

    from agent.net.capture import unavailable
    from agent.trace import measure_trace, plan_for

    why = await asyncio.to_thread(unavailable)
    if why is not None:
        print(f"netsonde-agent: warning: tracing is unavailable: {why}", file=sys.stderr)
    config = await asyncio.to_thread(trace_config, args, fingerprints)
    one_at_a_time = asyncio.Lock()

    async def measure(target: Target) -> SiteMeasurement:
        m = await site(target)
        force = getattr(args, "force", False)
        planned = plan_for(m, config, force=force) if why is None else None
        if planned is None:
            return m
        async with one_at_a_time:
            return await measure_trace(*planned, config)

    return measure


def print_paths(console: Console, rows: list[tuple[Target, SiteMeasurement]]) -> None:
    """Each trace's path: TTL, router, the trigger's reaction and the benign swap's."""
    from rich.table import Table

    from agent.model.trace import FULL_TTL

    for target, m in rows:
        if m.trace is None:
            continue
        trace = m.trace
        table = Table(title=f"{target.url} ({trace.trigger}: {trace.name} at {trace.address})")
        for column in ("TTL", "router", "trigger", "benign"):
            table.add_column(column)
        by_ttl: dict[int, dict[bool, str]] = {}
        routers: dict[int, str] = {}
        for a in m.trace.attempts:
            by_ttl.setdefault(a.ttl, {})[a.trigger] = a.reaction
            if a.router:
                routers.setdefault(a.ttl, a.router)
        censor = m.verdict.evidence.get("censor_ttl")
        for ttl in sorted(by_ttl):
            label = "normal" if ttl == FULL_TTL else str(ttl)
            mark = " ← censor" if ttl == censor else ""
            row = by_ttl[ttl]
            trigger, benign = row.get(True, "") + mark, row.get(False, "")
            router = "" if ttl == FULL_TTL else routers.get(ttl, "*")
            table.add_row(label, router, trigger, benign)
        console.print(table)

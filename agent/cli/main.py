"""Agent CLI, entry point: the ``netsonde-agent`` command and its ``probe`` subcommand.

``probe`` measures targets now and prints what it found. This module parses options and
orchestrates; it never opens a measurement socket itself (that is ``agent.site`` and the
probes). It imports only the standard library at module level, so ``--help`` starts fast on
a Raspberry Pi: aiohttp, dnspython, msgpack and rich load when a command actually runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, NoReturn

from agent import __version__
from agent.cli.options import PROBE_OPTIONS, collector_url

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AsyncExitStack
    from pathlib import Path

    from rich.console import Console
    from rich.progress import Progress

    from agent.api.auth import Credential
    from agent.api.control import HTTPControl
    from agent.cli.output import MsgpackSink
    from agent.fingerprints import FingerprintSet
    from agent.model.measurement import SiteMeasurement, Target
    from agent.probes.connectivity import CachedCheck
    from agent.site import ProbeConfig

PROG = "netsonde-agent"
PROGRESS_MIN_TARGETS = 6  # below this a progress bar is just flicker
PIPE_WIDTH = 160
LOCAL_ONLY = "verdicts will rely on local evidence"

PROBE_EPILOG = """\
targets:
  https://x.com/      a URL (http or https)
  x.com               a bare host name, tested as https://x.com/
  @FILE               a Citizen Lab test list (CSV with a url column); bad rows are
                      reported as FILE:LINE and skipped

Exit status: 0 once the targets are measured, whatever the verdicts; 1 if a target
could not be measured because of an internal error or the --msgpack-out file failed;
2 on a usage error. --msgpack-out appends self-delimiting msgpack records; read them
back with: for rec in msgpack.Unpacker(open(FILE, "rb"), raw=False): ...
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage dump: the message is what matters in a script log.
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="netsonde agent: measures whether and how sites are blocked on this network.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    probe = commands.add_parser(
        "probe",
        help="measure targets now and print the verdicts",
        description="Measure each target (DNS, TCP, TLS, HTTP, next to the collector's\n"
        "control) and say whether and how it is blocked.",
        epilog=PROBE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    probe.add_argument("targets", nargs="*", metavar="TARGET", help="URL, host name or @FILE")
    for flag, options, text in PROBE_OPTIONS:
        probe.add_argument(flag, **options, help=text)
    from agent.cli.trace import add_reference

    add_reference(probe)
    probe.set_defaults(func=cmd_probe, parser=probe)
    # The daemon's commands live in their own module, which is standard library only too.
    from agent.cli.daemon import add_commands

    add_commands(commands, collector_url)
    from agent.cli.trace import add_command as add_trace

    add_trace(commands, cmd_probe)
    return parser


def _say(kind: str, message: str) -> None:
    print(f"{PROG}: {kind}: {message}", file=sys.stderr, flush=True)


def _usage_error(message: str) -> int:
    print(f"{PROG} probe: error: {message} (see {PROG} probe --help)", file=sys.stderr)
    return 2


def cmd_probe(args: argparse.Namespace) -> int:
    import asyncio

    from agent.cli.output import MsgpackSink
    from agent.cli.targets import parse_targets

    parsed = parse_targets(args.targets)
    for problem in parsed.problems:
        _say("skipped", problem)
    if not parsed.targets:
        return _usage_error("no targets to measure")
    if args.throttle and not args.collector:
        return _usage_error("--throttle needs --collector: the test runs through its far end")
    if args.protocols and (args.throttle or not args.collector):
        return _usage_error("--protocols needs --collector, and not --throttle")
    if args.trace and (args.throttle or args.protocols):
        return _usage_error(
            "--trace traces the site test's verdicts: not with --throttle or --protocols"
        )
    from agent.cli.fingerprints import load_local

    fingerprints = load_local(args.fingerprints, _say)
    sink = None
    if args.msgpack_out:
        try:
            # Opened before measuring so a bad path fails in a second, not after an hour.
            sink = MsgpackSink(open(args.msgpack_out, "ab"))  # noqa: SIM115 - closed below
        except OSError as exc:
            return _usage_error(f"cannot open --msgpack-out {args.msgpack_out}: {exc.strerror}")
    try:
        return asyncio.run(_probe(args, parsed.targets, fingerprints, sink))
    finally:
        if sink is not None:
            sink.close()


async def _probe(
    args: argparse.Namespace,
    targets: list[Target],
    fingerprints: FingerprintSet | None,
    sink: MsgpackSink | None,
) -> int:
    from contextlib import AsyncExitStack
    from dataclasses import replace

    from rich.console import Console

    from agent.cli.throttle import open_throttle
    from agent.site import ProbeConfig, measure_site

    config = ProbeConfig(
        resolvers=tuple(args.resolver),
        benign_name=args.benign_sni,
        ca_file=args.ca_file,
        timeout=args.timeout,
        dns_timeout=args.timeout,  # glibc's own default per-query wait is 5 s too
        fingerprints=fingerprints,
    )
    # Piped into a file or a log, a folded 80-column table is hard to read or grep.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    stdout, stderr = Console(width=PIPE_WIDTH if wide else None), Console(stderr=True)
    async with AsyncExitStack() as stack:
        control, is_online, reachable = await _open_control(args, config, stack)
        if control is not None and not args.fingerprints:
            from agent.cli.fingerprints import from_collector

            # Not given any: the collector's, or the daemon's cached copy of them.
            session = control.session if reachable else None
            found = await from_collector(session, args.collector, _state_dir(args), _say)
            config = replace(config, fingerprints=found)
        # The far end's test instead of the site test (agent.cli.throttle).
        throttle = await open_throttle(args, stack, control) if args.throttle else None
        if args.protocols:  # agent.cli.protocols
            from agent.cli.protocols import open_protocols

            throttle = await open_protocols(args, stack, control)

        async def site(target: Target) -> SiteMeasurement:
            if throttle is not None:
                return await throttle(target)
            return await measure_site(target, config, control, is_online=is_online)

        measure: Callable[[Target], Awaitable[SiteMeasurement]] = site
        if args.trace:  # the site test, then a trace of a blocked target (agent.cli.trace)
            from agent.cli.trace import open_trace

            measure = await open_trace(args, site, config.fingerprints)

        results, failed, save_failed = await _measure_all(args, targets, measure, stderr, sink)
    _report(args, stdout, [(targets[i], results[i]) for i in sorted(results)], failed)
    return 1 if failed or save_failed else 0


async def _open_control(
    args: argparse.Namespace, config: ProbeConfig, stack: AsyncExitStack
) -> tuple[HTTPControl | None, CachedCheck, bool]:
    """The collector's control client (None without ``--collector``), closed with ``stack``,
    the connectivity check the site tests share, and whether the collector answered."""
    from agent.probes.connectivity import CachedCheck

    control = None
    if args.collector:
        from agent.api.control import HTTPControl

        # The collector runs a whole site test before answering, so it gets longer.
        timeout, signer = max(10.0, 2 * args.timeout), _identity(args)
        client = HTTPControl(
            args.collector, timeout=timeout, ca_file=args.ca_file, credential=signer
        )
        control = await stack.enter_async_context(client)
    is_online = CachedCheck(control, config.resolvers, config.benign_name, args.timeout)
    reachable = control is not None and await control.reachable()
    if reachable:
        is_online.remember(True)
    elif control is not None:
        _say("warning", f"collector unreachable at {args.collector}: {LOCAL_ONLY}")
    return control, is_online, reachable


def _state_dir(args: argparse.Namespace) -> Path:
    from pathlib import Path

    from agent.daemon.config import DEFAULT_STATE_DIR

    return Path(args.state_dir) if args.state_dir else DEFAULT_STATE_DIR


def _identity(args: argparse.Namespace) -> Credential | None:
    """The enrolled identity the control needs; None, said once, if there is none."""
    from agent.api.auth import Credential
    from agent.daemon.enrollment import KEY_FILE, STATE_FILE, DaemonError, read_state
    from agent.daemon.identity import load_key
    from agent.wire.keys import IdentityError

    state_dir = _state_dir(args)
    try:
        return Credential(read_state(state_dir).agent_id, load_key(state_dir / KEY_FILE))
    except (DaemonError, IdentityError) as exc:
        why = str(exc) if (state_dir / STATE_FILE).exists() else f"none in {state_dir}"
        enrol = f"enroll --collector {args.collector} --token-file FILE --state-dir {state_dir}"
        hint = f"enrol with: {PROG} {enrol}; until then {LOCAL_ONLY}"
        _say("warning", f"the control needs an enrolled agent ({why}); {hint}")
        return None


async def _measure_all(
    args: argparse.Namespace,
    targets: list[Target],
    measure: Callable[[Target], Awaitable[SiteMeasurement]],
    stderr: Console,
    sink: MsgpackSink | None,
) -> tuple[dict[int, SiteMeasurement], int, bool]:
    """Measures every target, printing each result as it comes with ``--json`` and saving it
    to ``sink``: (the results by target index, how many failed, whether saving failed)."""
    import asyncio
    from contextlib import nullcontext

    from agent.wire.json import measurement_json

    semaphore = asyncio.Semaphore(args.concurrency)

    async def one(i: int, target: Target) -> tuple[int, SiteMeasurement | Exception]:
        async with semaphore:
            try:
                return i, await measure(target)
            except Exception as exc:  # noqa: BLE001 - one target's bug must not stop the run
                return i, exc

    results: dict[int, SiteMeasurement] = {}
    failed = 0
    save_failed = False
    show_progress = len(targets) >= PROGRESS_MIN_TARGETS and sys.stderr.isatty() and not args.quiet
    progress = _progress(stderr) if show_progress else None
    with progress or nullcontext():
        task = progress.add_task("measuring", total=len(targets)) if progress else None
        for next_done in asyncio.as_completed([one(i, t) for i, t in enumerate(targets)]):
            i, result = await next_done
            if progress is not None and task is not None:
                progress.advance(task)
            if isinstance(result, Exception):
                failed += 1
                _say("error", f"{targets[i].url}: not measured: {result!r}")
                continue
            results[i] = result
            if args.json:
                print(measurement_json(targets[i], result), flush=True)
            if sink is not None and not save_failed:
                save_failed = not _save(sink, result, args.msgpack_out)
    return results, failed, save_failed


def _report(
    args: argparse.Namespace,
    stdout: Console,
    ordered: list[tuple[Target, SiteMeasurement]],
    failed: int,
) -> None:
    """The table (unless ``--json`` or ``--quiet``) and the summary line, on stdout, or on
    stderr after ``--json`` lines."""
    from agent.cli import output

    summary = output.summary_line((m.verdict.verdict for _, m in ordered), failed)
    if not args.json and not args.quiet:
        output.print_table(stdout, ordered)
        if getattr(args, "paths", False):  # netsonde-agent trace
            from agent.cli.trace import print_paths

            print_paths(stdout, ordered)
    if not args.json:
        print(summary, flush=True)
    elif not args.quiet:
        print(summary, file=sys.stderr, flush=True)


def _save(sink: MsgpackSink, m: SiteMeasurement, path: str) -> bool:
    try:
        sink.write(m)
    except OSError as exc:
        _say("error", f"cannot append to {path}: {exc}; no further records are saved")
        return False
    return True


def _progress(console: Console) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), console=console, transient=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if extra:
        # Reported by the subcommand's parser, so the hint points at its own --help.
        getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130

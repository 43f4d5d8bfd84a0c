"""Agent daemon: the ``enroll``, ``run`` and ``status`` subcommands of ``netsonde-agent``.

Standard library only at module level, like ``agent.cli``: the daemon's dependencies load
inside the command that needs them, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.daemon.config import AgentConfig

PROG = "netsonde-agent"
_MAX_TOKEN = 512  # the collector's tokens are 32 characters; a whole file is not one


def add_commands(
    commands: argparse._SubParsersAction[Any], collector_url: Callable[[str], str]
) -> None:
    """Registers the daemon's subcommands; ``collector_url`` validates a URL option."""
    from agent.daemon.config import DEFAULT_PATH

    config_help = f"agent configuration file (default: {DEFAULT_PATH})"
    _add_enroll(commands, collector_url, config_help)
    run = commands.add_parser(
        "run",
        help="run the daemon: measure, spool and upload on a schedule",
        description="Run until SIGTERM or SIGINT. Exit status: 0 stopped, 1 failed, "
        "2 configuration error.",
    )
    run.add_argument("--config", metavar="PATH", type=Path, default=DEFAULT_PATH, help=config_help)
    # Internal: the daemon re-execs itself with it to switch between full and lean idle mode
    # (docs/design/005-lean-idle.md). Without it, the daemon starts in full mode and
    # measures at once.
    run.add_argument("--mode", choices=("full", "lean"), default=None, help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run, parser=run)

    status = commands.add_parser(
        "status",
        help="show enrolment, spool and upload state (the daemon need not run)",
    )
    status.add_argument(
        "--config", metavar="PATH", type=Path, default=DEFAULT_PATH, help=config_help
    )
    status.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="state directory (default: the configuration's)",
    )
    status.add_argument(
        "--json", action="store_true", help="print one JSON object instead (for scripts)"
    )
    status.set_defaults(func=cmd_status, parser=status)  # fmt: skip


def _add_enroll(
    commands: argparse._SubParsersAction[Any], collector_url: Callable[[str], str], config_help: str
) -> None:
    enroll = commands.add_parser(
        "enroll",
        help="register this agent with a collector, once",
        description="Create the agent's key and register it with the collector using an "
        "enrolment token, read from a file or standard input (--token-file), never the "
        "command line. Exit status: 0 enrolled, 1 failed, 2 usage error.",
    )
    enroll.add_argument(
        "--collector",
        metavar="URL",
        type=collector_url,
        help="collector base URL (default: the first of the configuration)",
    )
    token = enroll.add_mutually_exclusive_group(required=True)
    token.add_argument(
        "--token-file",
        metavar="PATH",
        help="read the one-time enrolment token from PATH ('-': standard input)",
    )
    token.add_argument(
        "--token",
        metavar="T",
        help="the token itself; other users can read it (ps): prefer --token-file",
    )
    enroll.add_argument("--config", metavar="PATH", type=Path, help=config_help)
    enroll.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="where the key and agent id go (default: the configuration's)",
    )
    enroll.set_defaults(func=cmd_enroll, parser=enroll)


def _fail(message: str, code: int = 1) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _load(path: Path) -> AgentConfig:
    from agent.daemon.config import load_config

    return load_config(path)


def _read_token(args: argparse.Namespace) -> str:
    """The enrolment token; ValueError saying what is wrong with it."""
    if args.token is not None:
        print(
            f"{PROG}: warning: --token is visible to other users of this machine (ps, "
            "/proc); use --token-file PATH, or --token-file - to read standard input",
            file=sys.stderr,
        )
        text: str = args.token
    elif args.token_file == "-":
        text = sys.stdin.read(_MAX_TOKEN + 1)
    else:
        try:
            with open(args.token_file, encoding="utf-8") as fh:
                text = fh.read(_MAX_TOKEN + 1)
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--token-file {args.token_file}: cannot read it: {exc}") from None
    token = text.strip()
    # Tabs and line breaks are not printable; the space is, and is in no token either.
    printable = token.isascii() and token.isprintable() and " " not in token
    if not printable or not 0 < len(token) <= _MAX_TOKEN:
        raise ValueError("no enrolment token there (one word of printable ASCII)")
    return token


def cmd_enroll(args: argparse.Namespace) -> int:
    import asyncio

    from agent.daemon.config import DEFAULT_PATH, DEFAULT_STATE_DIR, ConfigError
    from agent.daemon.enrollment import DaemonError, enroll

    try:
        token = _read_token(args)
    except ValueError as exc:
        return _fail(str(exc), 2)
    config = None
    # The default file is read only if it exists: enrolment may come before configuration.
    path = args.config if args.config is not None else DEFAULT_PATH
    if args.config is not None or DEFAULT_PATH.exists():
        try:
            config = _load(path)
        except ConfigError as exc:
            return _fail(str(exc), 2)
    collector = args.collector or (config.collector.urls[0] if config else None)
    if collector is None:
        return _fail("no collector: give --collector URL or --config PATH", 2)
    state_dir = args.state_dir or (config.state_dir if config else DEFAULT_STATE_DIR)
    ca_file = str(config.ca_file) if config and config.ca_file else None
    try:
        state = asyncio.run(enroll(collector, token, state_dir, ca_file=ca_file))
    except DaemonError as exc:
        return _fail(str(exc))
    print(f"enrolled as {state.agent_id} with {state.collector}; state in {state_dir}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import logging
    import os
    import signal

    # Caught from here on, not only once the event loop runs: a SIGTERM that arrives while the
    # modules load (after each switch of mode, too) must still be a clean stop, exit 0.
    stopping: list[int] = []

    def early(signum: int, frame: object) -> None:
        stopping.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, early)

    from agent.daemon.config import ConfigError
    from agent.daemon.enrollment import DaemonError

    try:
        config = _load(args.config)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        switch = _run_mode(args.mode, config, stopping)
    except DaemonError as exc:
        return _fail(str(exc))
    if switch is None or stopping:
        return 0
    logging.getLogger("netsonde.agent").info("switching to %s mode (exec)", switch)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Same PID throughout, as systemd expects: the process replaces itself with the other mode.
    argv = [sys.executable, "-m", "agent.cli", "run", "--config", str(args.config.resolve())]
    os.execv(sys.executable, [*argv, "--mode", switch])
    raise AssertionError("os.execv returned")


def _run_mode(mode: str | None, config: AgentConfig, stopping: list[int]) -> str | None:
    """Runs the daemon in ``mode`` until a signal, or until it asks to switch: then returns
    the mode to exec into."""
    import asyncio
    import signal

    async def main() -> str | None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            stopping.append(signum)
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        if stopping:
            stop.set()
        if mode == "lean":
            from agent.daemon.lean import run_lean

            return await run_lean(config, stop=stop)
        from agent.daemon.full import run_daemon

        return await run_daemon(config, stop=stop, may_idle=True, resumed=mode == "full")

    return asyncio.run(main())


def _when(ms: object) -> str:
    if not isinstance(ms, int) or ms <= 0:
        return "never"
    ago = max(0, int(time.time() - ms / 1000))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))
    return f"{stamp} ({ago} s ago)"


def status_data(config: AgentConfig | None, state_dir: Path) -> dict[str, Any]:
    """What ``status --json`` prints, read from the state directory alone: ``agent_id`` and
    ``collector`` (None if not enrolled), and when the spool exists, ``spool`` (records and
    bytes waiting), ``totals`` (``spooled``, ``acked``, ``evicted``, ``waiting``, ``refused``,
    ``runs``, ``uploaded_bytes``, ``write_failures``, spool writes lost to a full disk, and
    ``checks_evicted``, connectivity checks dropped unsent beyond the spool's bound,
    since the spool was made), ``bandwidth`` (today's ``used``, ``budget``), ``meta`` (the
    daemon's last run, upload, connectivity and test list state) and ``disk`` (``free``:
    bytes free in the state directory)."""
    from agent.daemon import budget
    from agent.daemon import state as daemon
    from agent.daemon.disk import free_bytes
    from agent.daemon.enrollment import DaemonError, read_state
    from agent.daemon.spool import CHECK_EVICTIONS, Spool

    out: dict[str, Any] = {"agent_id": None, "collector": None, "state_dir": str(state_dir)}
    try:
        state = read_state(state_dir)
        out |= {"agent_id": state.agent_id, "collector": state.collector}
    except DaemonError as exc:
        out["not_enrolled"] = str(exc)
        if config is not None:
            out["collector"] = config.collector.urls[0]
    spool_path = state_dir / daemon.SPOOL_FILE
    if not spool_path.exists():
        return out
    max_bytes = config.limits.spool_size if config is not None else 1
    with Spool.open(spool_path, max_bytes=max_bytes) as spool:
        count, size = spool.depth()
        totals = spool.totals()
        meta = {
            key: spool.get_meta(key)
            for key in (
                daemon.META_LAST_RUN, daemon.META_LAST_RUN_RESULTS, daemon.META_LAST_RUN_FAILED,
                daemon.META_LAST_RUN_SKIPPED, daemon.META_LAST_UPLOAD, daemon.META_UPLOAD_FAILURE,
                daemon.META_CONNECTIVITY, daemon.META_CONNECTIVITY_AT,
                daemon.META_TESTLIST_FETCHED, daemon.META_TESTLIST_FAILURE, daemon.META_MODE,
            )
        }  # fmt: skip
        extra = {
            "refused": spool.get_meta(daemon.META_REFUSED),
            "runs": spool.get_meta(daemon.META_RUNS),
            "uploaded_bytes": spool.get_meta(daemon.META_UPLOADED_BYTES),
            "write_failures": spool.get_meta(daemon.META_WRITE_FAILURES),
            # Heartbeats lost while the collector was out of reach too long: an outage
            # the collector will see shorter than it was.
            "checks_evicted": spool.get_meta(CHECK_EVICTIONS),
        }
        used = spool.get_meta(budget.day_key())
    totals |= {key: value if isinstance(value, int) else 0 for key, value in extra.items()}
    limit = config.limits.daily_bandwidth if config is not None else None
    return out | {
        "spool": {"records": count, "bytes": size},
        "totals": totals,
        "bandwidth": {"used": used if isinstance(used, int) else 0, "budget": limit},
        "meta": meta,
        "disk": {"free": free_bytes(state_dir)},
    }


def status_lines(config: AgentConfig | None, state_dir: Path) -> list[str]:
    """What ``status`` prints, read from the state directory alone."""
    from agent.daemon import state as daemon

    data = status_data(config, state_dir)
    lines: list[str] = []
    if data["agent_id"] is not None:
        lines += [f"agent id:      {data['agent_id']}", f"collector:     {data['collector']}"]
    else:
        lines += [f"agent id:      not enrolled ({data['not_enrolled']})"]
        if data["collector"] is not None:
            lines += [f"collector:     {data['collector']}"]
    if "spool" not in data:
        return [*lines, "spool:         not created yet (the daemon has not run)"]
    count, size = data["spool"]["records"], data["spool"]["bytes"]
    totals, meta, bandwidth = data["totals"], data["meta"], data["bandwidth"]
    evictions = totals["evicted"]
    last_run = _when(meta[daemon.META_LAST_RUN])
    if meta[daemon.META_LAST_RUN] is not None:
        last_run += (
            f", {meta[daemon.META_LAST_RUN_RESULTS]} results,"
            f" {meta[daemon.META_LAST_RUN_FAILED]} failed"
        )
        if meta[daemon.META_LAST_RUN_SKIPPED]:
            last_run += f"; skipped {meta[daemon.META_LAST_RUN_SKIPPED]}"
    upload = _when(meta[daemon.META_LAST_UPLOAD])
    if meta[daemon.META_UPLOAD_FAILURE]:
        upload += f"; last attempt failed: {meta[daemon.META_UPLOAD_FAILURE]}"
    connectivity = meta[daemon.META_CONNECTIVITY] or "unknown"
    if meta[daemon.META_CONNECTIVITY_AT] is not None:
        connectivity = f"{connectivity}, checked {_when(meta[daemon.META_CONNECTIVITY_AT])}"
    used, limit = bandwidth["used"], bandwidth["budget"]
    if limit is None:
        usage = f"{_size(used)} today (UTC), no daily budget"
    else:
        usage = f"{_size(used)} of {_size(limit)} today (UTC)"
        if used >= limit:
            usage += ", spent: measuring and uploading results paused until 00:00 UTC"
            usage += " (heartbeats go on)"
    testlist = "local files only"
    if config is None or config.testlist.from_collector:
        testlist = f"collector list fetched {_when(meta[daemon.META_TESTLIST_FETCHED])}"
        if meta[daemon.META_TESTLIST_FAILURE]:
            testlist += f"; last attempt failed: {meta[daemon.META_TESTLIST_FAILURE]}"
    return [
        *lines,
        f"spool:         {count} records, {size} bytes waiting",
        f"evictions:     {evictions} measurements, {totals['checks_evicted']} connectivity checks",
        f"measurements:  {totals['spooled']} made, {totals['acked']} acknowledged by the "
        f"collector ({totals['refused']} of them refused), {evictions} evicted, "
        f"{totals['runs']} runs",
        f"bandwidth:     {usage}",
        f"disk:          {_disk(data['disk']['free'], totals['write_failures'])}",
        f"test list:     {testlist}",
        f"last run:      {last_run}",
        f"last upload:   {upload}",
        f"connectivity:  {connectivity}",
    ]


def _size(n: int) -> str:
    return f"{n / 10**6:.1f} MB" if n >= 10**5 else f"{n} B"


def _disk(free: int | None, lost: int) -> str:
    from agent.daemon.disk import MIN_FREE_BYTES

    text = "free space unknown" if free is None else f"{_size(free)} free"
    if free is not None and free < MIN_FREE_BYTES:
        text += f", under {_size(MIN_FREE_BYTES)}: measuring paused until there is room"
    return text + (f"; {lost} spool writes lost to a full disk" if lost else "")


def cmd_status(args: argparse.Namespace) -> int:
    from agent.daemon.config import DEFAULT_STATE_DIR, ConfigError
    from agent.daemon.spool import SpoolError

    config = None
    try:
        config = _load(args.config)
    except ConfigError as exc:
        if args.state_dir is None:
            return _fail(str(exc), 2)
        # With --state-dir the state can still be shown; the file's problem is worth a line.
        print(f"{PROG}: warning: {exc}", file=sys.stderr)
    state_dir = args.state_dir or (config.state_dir if config else DEFAULT_STATE_DIR)
    try:
        if args.json:
            import json

            print(json.dumps(status_data(config, state_dir)))
            return 0
        lines = status_lines(config, state_dir)
    except SpoolError as exc:
        return _fail(str(exc))
    print("\n".join(lines))
    return 0

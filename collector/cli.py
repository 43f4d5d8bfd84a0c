"""Collector entry point: the ``netsonde-collector`` command.

Only argparse and the standard library at import time, so ``--help`` is fast;
aiohttp and the agent's probes are imported when ``serve`` actually runs.
Usage and configuration errors exit 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import logging
import signal
import sys
from typing import TYPE_CHECKING

from collector import __version__
from collector.agents_cli import OPERATOR_TOKEN, operator_token_parser
from collector.config import (
    DEFAULT_BENIGN_SNI,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_CONTROL_BURST,
    DEFAULT_CONTROL_DEADLINE,
    DEFAULT_CONTROL_RATE,
    DEFAULT_CONTROL_TTL,
    DEFAULT_DB,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_INGEST_BURST,
    DEFAULT_INGEST_RATE,
    DEFAULT_LISTEN,
    DEFAULT_TIMEOUT,
    ConfigError,
    Settings,
    make_settings,
)
from collector.evidence import cli as evidence_cli
from collector.export.cli import EXPORT, export_parser
from collector.farend import FarendError
from collector.farend import cli as farend_cli
from collector.reclassify_cli import reclassify_parser, run_reclassify
from collector.report_cli import REPORT, incident_options, report_parser, thresholds_from_args

if TYPE_CHECKING:
    # What add_subparsers returns; argparse names its type only privately.
    _Commands = argparse._SubParsersAction[argparse.ArgumentParser]

PROG = "netsonde-collector"
# How long in-flight requests may take to finish once a stop was asked for.
SHUTDOWN_GRACE = 3.0

log = logging.getLogger("netsonde.collector")


class ListenError(RuntimeError):
    """The listening socket cannot be opened (address in use, not local, no permission)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="netsonde collector: control vantage point, ingest and aggregation service.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _serve_parser(commands)
    reclassify_parser(commands)
    _enroll_parser(commands)
    _agents_parser(commands)
    operator_token_parser(commands)
    export_parser(commands)
    evidence_cli.evidence_parsers(commands, DEFAULT_DB)
    report_parser(commands, DEFAULT_DB)
    farend_cli.farend_parser(commands)
    return parser


def _serve_parser(commands: _Commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the collector's HTTP API",
        description="Run the collector's HTTP API (control measurements under /api/v1).",
    )
    serve.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to listen on, IPv6 as [ADDR]:PORT (default {DEFAULT_LISTEN})",
    )
    serve.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="URL",
        help=f"storage: sqlite:///PATH or postgresql://... (default {DEFAULT_DB})",
    )
    serve.add_argument(
        "--ca-file",
        metavar="PATH",
        help="extra CA certificates (PEM) trusted by control TLS checks, besides the system store",
    )
    serve.add_argument(
        "--resolver",
        action="append",
        default=[],
        metavar="IP",
        help="public resolver the control also queries over UDP (repeatable)",
    )
    serve.add_argument(
        "--benign-sni",
        default=DEFAULT_BENIGN_SNI,
        metavar="NAME",
        help=f"name for the SNI and Host swaps (default {DEFAULT_BENIGN_SNI})",
    )
    serve.add_argument(
        "--control-ttl",
        type=float,
        default=DEFAULT_CONTROL_TTL,
        metavar="SECONDS",
        help=f"how long a control stays cached; 0 disables (default {DEFAULT_CONTROL_TTL:g})",
    )
    serve.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"per-operation timeout of control probes (default {DEFAULT_TIMEOUT:g})",
    )
    evidence_cli.key_file_option(serve)
    _control_limits(serve)
    _agents_options(serve)
    _client_timeouts(serve)
    incident_options(serve)
    farend_cli.add_serve_options(serve)


def _control_limits(serve: argparse.ArgumentParser) -> None:
    """``serve``'s bounds on the control: where it may connect, how often an agent may ask,
    how long one measurement may run."""
    serve.add_argument(
        "--allow-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="network the control may measure although it is not public, e.g. a lab's "
        "documentation ranges (repeatable; default none: no loopback, private, link-local, "
        "reserved or documentation address is measured)",
    )
    serve.add_argument(
        "--control-rate",
        type=float,
        default=DEFAULT_CONTROL_RATE,
        metavar="N",
        help=f"control requests per second each agent may make (default "
        f"{DEFAULT_CONTROL_RATE:g}); more get 429 with Retry-After",
    )
    serve.add_argument(
        "--control-burst",
        type=int,
        default=DEFAULT_CONTROL_BURST,
        metavar="N",
        help=f"control requests an agent may make at once before the rate applies "
        f"(default {DEFAULT_CONTROL_BURST})",
    )
    serve.add_argument(
        "--control-deadline",
        type=float,
        default=DEFAULT_CONTROL_DEADLINE,
        metavar="S",
        help=f"longest one control measurement may take; then 504 "
        f"(default {DEFAULT_CONTROL_DEADLINE:g})",
    )


def _agents_options(serve: argparse.ArgumentParser) -> None:
    """``serve``'s options about the agents: where they are, what they are served, and how
    much they may upload."""
    serve.add_argument(
        "--geoip",
        action="append",
        default=[],
        metavar="PATH",
        help="MaxMind-format database giving agents' ASN and country: one combined file, or "
        "an ASN and a country file (repeatable; the first that knows a field wins)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="reverse proxy whose X-Forwarded-For is believed (repeatable; default none)",
    )
    serve.add_argument(
        "--testlist",
        metavar="PATH",
        help="Citizen Lab test list CSV served at GET /api/v1/testlist (re-read when changed)",
    )
    serve.add_argument(
        "--fingerprints", action="append", default=[], metavar="PATH",
        help="blockpage fingerprint CSV (OONI schema) served to agents at GET "
        "/api/v1/fingerprints, read once at start (repeatable)",
    )  # fmt: skip
    serve.add_argument(
        "--ingest-rate",
        type=float,
        default=DEFAULT_INGEST_RATE,
        metavar="N",
        help=f"batches per second each agent may upload (default {DEFAULT_INGEST_RATE:g}); "
        "more get 429 with Retry-After",
    )
    serve.add_argument(
        "--ingest-burst",
        type=int,
        default=DEFAULT_INGEST_BURST,
        metavar="N",
        help=f"batches an agent may upload at once before the rate applies "
        f"(default {DEFAULT_INGEST_BURST})",
    )


def _client_timeouts(serve: argparse.ArgumentParser) -> None:
    """How long a client may take; collector.web.timeouts says how each is enforced."""
    serve.add_argument(
        "--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT, metavar="S",
        help="close a connection idle, or still sending a request's head, after S seconds "
        f"(default {DEFAULT_IDLE_TIMEOUT:g})",
    )  # fmt: skip
    serve.add_argument(
        "--body-timeout", type=float, default=DEFAULT_BODY_TIMEOUT, metavar="S",
        help="close a connection still sending a request body after S seconds, plus 1 s per "
        f"KiB it sent (default {DEFAULT_BODY_TIMEOUT:g})",
    )  # fmt: skip


def _enroll_parser(commands: _Commands) -> None:
    enroll = commands.add_parser(
        "enroll",
        help="issue a one-time enrolment token for a new agent",
        description="Print a one-time token; the agent exchanges it and its public key for an "
        "agent id at POST /api/v1/enroll before it expires.",
    )
    enroll.add_argument("--name", required=True, help="the agent's name, for the operator")
    enroll.add_argument("--db", default=DEFAULT_DB, metavar="URL", help="the storage URL")
    enroll.add_argument(
        "--ttl", type=float, default=24.0, metavar="HOURS", help="validity (default 24)"
    )


def _agents_parser(commands: _Commands) -> None:
    agents = commands.add_parser("agents", help="list or revoke enrolled agents")
    agent_commands = agents.add_subparsers(dest="agents_command", metavar="ACTION", required=True)
    listing = agent_commands.add_parser("list", help="list the enrolled agents")
    listing.add_argument("--db", default=DEFAULT_DB, metavar="URL", help="the storage URL")
    revoke = agent_commands.add_parser("revoke", help="refuse all further uploads of an agent")
    revoke.add_argument("agent_id", metavar="ID")
    revoke.add_argument("--db", default=DEFAULT_DB, metavar="URL", help="the storage URL")


def settings_from_args(args: argparse.Namespace) -> Settings:
    settings = make_settings(
        listen=args.listen,
        db=args.db,
        ca_file=args.ca_file,
        resolvers=args.resolver,
        benign_sni=args.benign_sni,
        control_ttl=args.control_ttl,
        timeout=args.timeout,
        geoip=args.geoip,
        trusted_proxies=args.trusted_proxy,
        testlist=args.testlist,
        fingerprints=args.fingerprints,
        ingest_rate=args.ingest_rate,
        ingest_burst=args.ingest_burst,
        allowed_networks=args.allow_network,
        control_rate=args.control_rate,
        control_burst=args.control_burst,
        control_deadline=args.control_deadline,
        idle_timeout=args.idle_timeout,
        body_timeout=args.body_timeout,
        key_file=args.key_file,
        incidents=thresholds_from_args(args),
    )
    farend = farend_cli.serve_farend_config(args, settings.host, settings.db_url)
    return dataclasses.replace(settings, farend=farend)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then finish in-flight requests and clean up."""
    from aiohttp import web

    from collector.web.app import create_app
    from collector.web.timeouts import runner_options

    # handler_cancellation: a client that hangs up cancels its handler, and with it the
    # control measurement it alone was waiting for (collector.control.ControlCache).
    runner = web.AppRunner(
        create_app(settings),
        access_log=None,
        shutdown_timeout=SHUTDOWN_GRACE,
        handler_cancellation=True,
        **runner_options(settings),
    )
    await runner.setup()  # starts the far end too (collector.web.farend): FarendError
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise ListenError(f"cannot listen on {settings.url}: {exc.strerror or exc}") from exc
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info("listening on %s", settings.url)
        await stop.wait()
        log.info("stopping")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runner.cleanup()


# The collector extra (pyproject.toml): an agent-only install has the command but not these.
_EXTRA_MODULES = ("msgspec", "sqlalchemy", "alembic", "psycopg", "maxminddb", "prometheus_client")


def _missing_extra() -> str | None:
    return next((m for m in _EXTRA_MODULES if importlib.util.find_spec(m) is None), None)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return 0
    if missing := _missing_extra():
        print(
            f"{PROG}: error: the collector needs netsonde's collector extra ({missing} is "
            "not installed): pip install 'netsonde[collector]'",
            file=sys.stderr,
        )
        return 1
    if args.command == EXPORT:
        from collector.export.cli import run_export

        return run_export(args)
    if args.command == REPORT:
        from collector.report_cli import run_report

        return run_report(args)
    if args.command in evidence_cli.COMMANDS:
        return evidence_cli.run_evidence_command(args)
    if args.command == farend_cli.FAREND:
        return farend_cli.run_farend(args)
    if args.command == "reclassify":
        return run_reclassify(args.db, args.fingerprints)
    if args.command in ("enroll", "agents", OPERATOR_TOKEN):
        from collector.agents_cli import run_agents_command

        return run_agents_command(args)
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if (failed := evidence_cli.check_key(settings)) is not None:
        return failed
    try:
        asyncio.run(serve(settings))
    except (ListenError, FarendError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Collector far end, entry points: ``serve``'s ``--farend-*`` options, and the ``farend``
command that runs a far end alone, on a host apart from the API.

Only argparse and the standard library at import time (``collector.cli`` builds its parser
from here): the server, ssl and cryptography load when the far end runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from collector.config import ConfigError
from collector.farend import FarendError
from collector.farend.config import (
    DEFAULT_CATEGORIES,
    DEFAULT_DAILY_BYTES,
    DEFAULT_HTTP_PORT,
    DEFAULT_PER_AGENT,
    DEFAULT_TLS_PORT,
    DEFAULT_TRANSFERS,
    DEFAULT_UDP_PORT,
    FarendConfig,
    default_state_dir,
    make_farend_config,
)

if TYPE_CHECKING:
    _Commands = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["add_serve_options", "farend_parser", "run_farend", "serve_farend_config"]

PROG = "netsonde-collector"
FAREND = "farend"


def _listen_options(parser: argparse._ActionsContainer, prefix: str) -> None:
    """The options ``serve`` (prefix ``--farend-``) and ``farend`` (``--``) share."""
    ports = (
        ("tls", DEFAULT_TLS_PORT, "TLS port: a handshake with any SNI, then a transfer"),
        ("http", DEFAULT_HTTP_PORT, "plain HTTP port: a transfer with any Host"),
        ("udp", DEFAULT_UDP_PORT, "UDP echo port"),
    )
    for name, default, what in ports:
        parser.add_argument(
            f"{prefix}{name}-port", dest=f"farend_{name}_port", type=int, default=default,
            metavar="N", help=f"the far end's {what} (default {default}; 0: any free port)",
        )  # fmt: skip
    parser.add_argument(
        f"{prefix}dir", dest="farend_dir", metavar="DIR",
        help="where its token secret and certificate are kept, made on first start "
        "(default: $STATE_DIRECTORY, else the SQLite database's directory, else here)",
    )  # fmt: skip
    parser.add_argument(
        f"{prefix}daily-bytes", dest="farend_daily_bytes", type=int,
        default=DEFAULT_DAILY_BYTES, metavar="N",
        help=f"bytes each agent may move through it per UTC day (default {DEFAULT_DAILY_BYTES})",
    )  # fmt: skip
    parser.add_argument(
        f"{prefix}transfers", dest="farend_transfers", type=int, default=DEFAULT_TRANSFERS,
        metavar="N", help=f"transfers it runs at once, all agents (default {DEFAULT_TRANSFERS})",
    )  # fmt: skip
    parser.add_argument(
        f"{prefix}per-agent", dest="farend_per_agent", type=int, default=DEFAULT_PER_AGENT,
        metavar="N", help=f"transfers one agent may run at once (default {DEFAULT_PER_AGENT})",
    )  # fmt: skip


def add_serve_options(serve: argparse.ArgumentParser) -> None:
    """``serve``'s options for the far end it runs beside the API (docs: README.md)."""
    group = serve.add_argument_group("far end (throttle and protocol tests)")
    group.add_argument(
        "--no-farend", action="store_true",
        help="run no far end and hand out no tokens (POST /api/v1/farend answers 404)",
    )  # fmt: skip
    group.add_argument(
        "--farend-host", metavar="ADDR",
        help="address the far end listens on (default: --listen's host)",
    )  # fmt: skip
    group.add_argument(
        "--farend-advertise", metavar="HOST",
        help="name or address agents are told to use (default: the host they reached the "
        "API by, which behind a reverse proxy is the proxy's)",
    )  # fmt: skip
    group.add_argument(
        "--farend-remote", action="store_true",
        help="the far end runs elsewhere ('netsonde-collector farend' with the same secret "
        "file) at --farend-advertise: only hand out its tokens",
    )  # fmt: skip
    group.add_argument(
        "--farend-target", action="append", default=[], metavar="URL",
        help="a URL or name the agents' daemons should test for throttling (repeatable)",
    )  # fmt: skip
    group.add_argument(
        "--farend-category", action="append", metavar="CODE",
        help="test-list category whose URLs the daemons test for throttling (repeatable; "
        f"default {' '.join(DEFAULT_CATEGORIES)}: social networking, messaging, circumvention)",
    )  # fmt: skip
    _listen_options(group, "--farend-")


def farend_parser(commands: _Commands) -> None:
    farend = commands.add_parser(
        FAREND,
        help="run the far end alone (when it should not share the API's host)",
        description="Run the far end of the throttle and protocol tests on its own. It checks "
        "the tokens that 'serve --farend-remote --farend-advertise THIS-HOST' hands out, so "
        "both need the same farend.secret file.",
    )
    farend.add_argument(
        "--listen", default="0.0.0.0", metavar="ADDR", help="address to listen on (default all)"
    )
    _listen_options(farend, "--")


def _config(args: argparse.Namespace, host: str, db_url: str | None) -> FarendConfig:
    directory = Path(args.farend_dir) if args.farend_dir else default_state_dir(db_url)
    return make_farend_config(
        host=host,
        state_dir=directory,
        tls_port=args.farend_tls_port,
        http_port=args.farend_http_port,
        udp_port=args.farend_udp_port,
        advertise=getattr(args, "farend_advertise", None),
        remote=getattr(args, "farend_remote", False),
        daily_bytes=args.farend_daily_bytes,
        max_transfers=args.farend_transfers,
        per_agent=args.farend_per_agent,
        targets=getattr(args, "farend_target", ()),
        categories=getattr(args, "farend_category", None) or DEFAULT_CATEGORIES,
    )


def serve_farend_config(
    args: argparse.Namespace, listen_host: str, db_url: str
) -> FarendConfig | None:
    """The far end ``serve`` runs, None with ``--no-farend``; ConfigError if it cannot work."""
    if args.no_farend:
        return None
    return _config(args, args.farend_host or listen_host, db_url)


async def _run(config: FarendConfig) -> None:
    from collector.farend.server import Farend

    farend = Farend(config)
    await farend.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await farend.stop()


def run_farend(args: argparse.Namespace) -> int:
    """The ``farend`` command: until SIGTERM or SIGINT."""
    try:
        config = _config(args, args.listen, None)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        asyncio.run(_run(config))
    except FarendError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    return 0

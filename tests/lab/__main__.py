"""Censor lab: command-line entry (``python -m tests.lab``).

up [--scenarios PATH]       bring a lab up in the background and print its status
status [--json]             show a running lab
check                       run every scenario's self-check against a running lab
exec ROLE -- CMD...         run a command in a namespace (agent, cpe, isp, border, transit, net)
shutdown on|off             cut or restore the agent's uplink
down [--all]                take a lab down
cleanup                     remove labs left behind by crashed runs
scenarios [--json]          print the scenario table
demo [--keep] [--port N]    bring a lab up, show each censor acting and netsonde's
                            verdicts; --keep: its dashboard on 127.0.0.1:N until Ctrl-C
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tests.lab.addresses import ROLES
from tests.lab.dashboard import DEFAULT_PORT
from tests.lab.demo import print_checks, run_checks, run_demo
from tests.lab.lab import STATE_ROOT, Lab, cleanup_stale, live_labs, read_state
from tests.lab.scenarios import DEFAULT_TABLE, ScenarioError, ScenarioTable, load
from tests.lab.shell import LabError, in_ns
from tests.lab.topology import PREFIX_RE

console = Console()
UP_TIMEOUT = 60.0


def _table(path: str | None) -> ScenarioTable:
    return load(Path(path) if path else DEFAULT_TABLE)


def cmd_up(args: argparse.Namespace) -> int:
    table = _table(args.scenarios)
    if args.prefix is not None and not PREFIX_RE.match(args.prefix):
        raise LabError(
            f"--prefix must look like nsl + 6 hex digits, e.g. nsl0a1b2c (got {args.prefix})"
        )
    lab = Lab(table, prefix=args.prefix)
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    log_path = STATE_ROOT / f"{lab.prefix}.holder.log"
    argv = [sys.executable, "-m", "tests.lab", "_hold", "--prefix", lab.prefix]
    argv += ["--scenarios", str(table.source)]
    with log_path.open("w") as log:
        holder = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    started = time.monotonic()
    while time.monotonic() - started < UP_TIMEOUT:
        state = read_state(lab.prefix)
        if state is not None and state["status"] == "ready":
            console.print(f"lab {lab.prefix} is up in {time.monotonic() - started:.1f}s")
            _print_status(lab)
            return 0
        if holder.poll() is not None:
            console.print(f"[red]lab failed to come up:[/red]\n{log_path.read_text()}")
            return 1
        time.sleep(0.05)
    holder.terminate()
    console.print(f"[red]lab not up after {UP_TIMEOUT:.0f}s; see {log_path}[/red]")
    return 1


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so `with lab` and `finally` take the lab down."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def cmd_hold(args: argparse.Namespace) -> int:
    """Own a lab in the background until SIGTERM (what `up` starts, and `down` stops)."""
    lab = Lab(_table(args.scenarios), prefix=args.prefix)
    _exit_on_sigterm()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with lab:
        print(f"lab {lab.prefix} ready", flush=True)
        while True:
            signal.pause()


def _print_status(lab: Lab) -> None:
    status = lab.status()
    console.print(
        f"prefix {status['prefix']} ({status['status']}), owner pid {status['owner_pid']}"
    )
    for role, ns in status["namespaces"].items():
        console.print(f"  {role:<7} {ns}")
    console.print(f"  lab CA {status['ca_file']}")
    console.print(
        f"  ISP resolver {status['isp_resolver']}, public resolver {status['public_resolver']}, "
        f"collector address {status['collector_address']}"
    )
    down = [name for name, alive in status["services"].items() if not alive]
    console.print(
        f"  services: {len(status['services'])} running" + (f", DOWN: {down}" if down else "")
    )
    console.print(f"  uplink: {'CUT (shutdown)' if status['shutdown'] else 'up'}")
    _print_scenarios(lab.table)


def _print_scenarios(table: ScenarioTable) -> None:
    out = Table(title=f"scenarios ({table.source})")
    for column in ("domain", "ip", "technique", "hop", "expected", "url"):
        out.add_column(column)
    for row in table.rows:
        out.add_row(row.domain, row.ip, row.technique, row.hop, row.expected, row.url)
    console.print(out)


def cmd_status(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.prefix)
    if args.json:
        print(json.dumps(lab.status(), indent=2))
    else:
        _print_status(lab)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    states = live_labs() if args.all else [read_state(Lab.attach(args.prefix).prefix)]
    for state in states:
        if state is None:
            continue
        os.kill(int(state["owner_pid"]), signal.SIGTERM)
        deadline = time.monotonic() + 15
        while read_state(state["prefix"]) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        console.print(f"lab {state['prefix']} is down")
    removed = cleanup_stale()
    if removed:
        console.print(f"removed leftovers of {', '.join(removed)}")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    removed = cleanup_stale()
    console.print(f"removed {', '.join(removed)}" if removed else "nothing stale")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.prefix)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise LabError(
            "exec needs a command, for example: python -m tests.lab exec agent -- ip route"
        )
    os.execvp("ip", in_ns(lab.topo.ns(args.role), command))


def cmd_shutdown(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.prefix)
    lab.shutdown(args.state == "on")
    console.print(f"agent uplink {'cut' if args.state == 'on' else 'restored'}")
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    table = _table(args.scenarios)
    if args.json:
        print(
            json.dumps(
                {
                    "benign_domain": table.benign_domain,
                    "scenarios": [r.to_dict() for r in table.rows],
                },
                indent=2,
            )
        )
    else:
        _print_scenarios(table)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    results = run_checks(Lab.attach(args.prefix))
    print_checks(console, results)
    return 0 if all(r.passed for r in results) else 1


def cmd_record(args: argparse.Namespace) -> int:
    """Record the wire records of every scenario, with and without a control, for unit tests."""
    from tests.lab import engine
    from tests.lab.collector import LabCollector

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with Lab(_table(args.scenarios)) as lab:
        for name in ("with-control.msgpack", "without-control.msgpack"):
            (out / name).unlink(missing_ok=True)
        with LabCollector(lab, lab.state_dir / "collector") as collector:
            engine.measure_table(
                lab, collector_url=collector.url, msgpack_out=out / "with-control.msgpack"
            )
        engine.measure_table(lab, collector_url=None, msgpack_out=out / "without-control.msgpack")
    console.print(f"recorded into {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    _exit_on_sigterm()
    return run_demo(_table(args.scenarios), console, keep=args.port if args.keep else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.lab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)

    def add(name: str, func: object, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        return p

    for name, func, help_text in (
        ("up", cmd_up, "bring a lab up in the background"),
        ("demo", cmd_demo, "bring a lab up, show every censor acting, take it down"),
        ("scenarios", cmd_scenarios, "print the scenario table"),
        ("_hold", cmd_hold, argparse.SUPPRESS),
    ):
        p = add(name, func, help_text)
        p.add_argument("--scenarios", help="scenario table (default: tests/lab/scenarios.toml)")
        if name in ("_hold", "up"):
            p.add_argument(
                "--prefix", required=name == "_hold", help="namespace prefix (nslXXXXXX)"
            )
        if name == "scenarios":
            p.add_argument("--json", action="store_true")
        if name == "demo":
            p.add_argument(
                "--keep", action="store_true",
                help="keep the collector running, its dashboard open on the host, until Ctrl-C",
            )  # fmt: skip
            p.add_argument(
                "--port", type=int, default=DEFAULT_PORT,
                help="with --keep, the dashboard's port on 127.0.0.1 (default 8080)",
            )  # fmt: skip
    for name, func, help_text in (
        ("status", cmd_status, "show a running lab"),
        ("check", cmd_check, "run every scenario's self-check against a running lab"),
        ("down", cmd_down, "take a lab down"),
        ("shutdown", cmd_shutdown, "cut (on) or restore (off) the agent's uplink"),
        ("exec", cmd_exec, "run a command inside a lab namespace"),
    ):
        p = add(name, func, help_text)
        p.add_argument("--prefix", help="which lab, when several run")
        if name == "status":
            p.add_argument("--json", action="store_true")
        if name == "down":
            p.add_argument("--all", action="store_true", help="take down every running lab")
        if name == "shutdown":
            p.add_argument("state", choices=("on", "off"))
        if name == "exec":
            p.add_argument("role", choices=ROLES)
            p.add_argument("command", nargs=argparse.REMAINDER)
    add("cleanup", cmd_cleanup, "remove labs left behind by crashed runs")
    record = add("record", cmd_record, "record every scenario's wire records (unit-test data)")
    record.add_argument("out", help="directory for with-control.msgpack, without-control.msgpack")
    record.add_argument("--scenarios", help="scenario table (default: tests/lab/scenarios.toml)")
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (LabError, ScenarioError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())

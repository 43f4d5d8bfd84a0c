"""Censor lab: the demo - the lab's censors, then netsonde telling how each site is blocked.

1. Bring the lab up and show, with plain clients, that every censor acts as configured.
2. Start the collector in the net namespace (embedded SQLite) as the uncensored control,
   serving the OONI fingerprints, and enrol the probe with it: the control serves enrolled
   agents only.
3. Run ``netsonde-agent probe`` in the agent namespace on every scenario's URL and set
   its verdicts and evidence next to what the scenario table expects.
4. Cut the agent's uplink, as a shutdown order would, and measure again.
5. Trace every censor a trace can locate (``netsonde-agent trace``): where along the path
   it reacts, next to where ``tests.lab.positions`` puts it.
6. Upload the results as the agent would; with ``--keep``, keep the collector running and
   open its dashboard to the host's browser at http://127.0.0.1:8080/ until Ctrl-C.
"""

from __future__ import annotations

import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rich.console import Console
from rich.table import Table

from tests.lab import checks, dashboard, engine
from tests.lab.addresses import ROLES
from tests.lab.collector import LabCollector
from tests.lab.lab import Lab
from tests.lab.positions import TRACEABLE, expected_position
from tests.lab.scenarios import Scenario, ScenarioTable


def run_checks(lab: Lab) -> list[checks.CheckResult]:
    rows = [row for row in lab.table.rows if row.technique not in checks.DISRUPTIVE]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda row: checks.check(lab, row), rows))
    disruptive = [row for row in lab.table.rows if row.technique in checks.DISRUPTIVE]
    return results + [checks.check(lab, row) for row in disruptive]


def print_checks(console: Console, results: list[checks.CheckResult]) -> None:
    out = Table(title="1. each censor, seen from the agent namespace with plain clients")
    for column in ("domain", "technique", "hop", "what the lab does", ""):
        out.add_column(column, overflow="fold")
    for result in results:
        row = result.row
        mark = "[green]as configured[/green]" if result.passed else "[red]WRONG[/red]"
        out.add_row(row.domain, row.technique, row.hop, result.observed, mark)
    console.print(out)


def _evidence(result: dict[str, Any]) -> str:
    evidence = result.get("evidence") or {}
    return " ".join(f"{key}={value}" for key, value in evidence.items())


def _verdicts_table(rows: list[Scenario], results: dict[str, dict[str, Any]]) -> Table:
    out = Table(title="2. what netsonde concludes (agent behind the censors, control outside)")
    for column in ("url", "censor", "expected", "netsonde verdict", "evidence", ""):
        out.add_column(column, overflow="fold")
    for row in rows:
        censor = row.technique if row.hop == "none" else f"{row.technique} @ {row.hop}"
        result = results.get(row.domain)
        if result is None:
            out.add_row(row.url, censor, row.expected, "-", "(a later issue)", "")
            continue
        good = result["verdict"] == row.expected
        mark = "[green]as expected[/green]" if good else "[red]DIFFERENT[/red]"
        out.add_row(row.url, censor, row.expected, result["verdict"], _evidence(result), mark)
    return out


def _traces_table(rows: list[Scenario], traced: dict[str, dict[str, Any]]) -> Table:
    out = Table(title="3. where each censor sits (netsonde-agent trace)")
    for column in ("url", "censor", "expected", "netsonde found", "injected", ""):
        out.add_column(column, overflow="fold")
    for row in rows:
        want = expected_position(row)
        assert want is not None
        ev = traced.get(row.domain, {}).get("evidence", {})
        found = (ev.get("censor_ttl"), ev.get("after_hop"), ev.get("path"))
        good = _located(row, traced)
        out.add_row(
            row.url, f"{row.technique} @ {row.hop}",
            f"ttl {want.censor_ttl} after {want.after_hop}, {want.path}-path",
            f"ttl {found[0]} after {found[1]}, {found[2]}-path", str(ev.get("injected", "-")),
            "[green]as expected[/green]" if good else "[red]DIFFERENT[/red]",
        )  # fmt: skip
    return out


def _located(row: Scenario, traced: dict[str, dict[str, Any]]) -> bool:
    want = expected_position(row)
    ev = traced.get(row.domain, {}).get("evidence", {})
    found = (ev.get("censor_ttl"), ev.get("after_hop"), ev.get("path"))
    return want is not None and found == (want.censor_ttl, want.after_hop, want.path)


def trace(lab: Lab, collector: LabCollector, records: Any) -> dict[str, dict[str, Any]]:
    """Every traceable row's trace, its records appended to ``records``; by domain."""
    rows = [row for row in lab.table.rows if row.technique in TRACEABLE]
    options = ["--msgpack-out", str(records)]
    results = engine.trace(
        lab, [row.url for row in rows], collector_url=collector.url, options=options
    )
    return {r["target"].split("/")[2]: r for r in results}


def measure(
    lab: Lab, collector: LabCollector, console: Console
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    argv = engine.probe_argv(lab, collector_url=collector.url)
    console.print(
        "[dim]in the agent namespace:[/dim] "
        + shlex.join(["netsonde-agent", *argv[3:], "URL..."]).replace(str(lab.state_dir), "$LAB")
    )
    console.print(
        "[dim]and for the throttle rows, through the collector's far end:[/dim] "
        "netsonde-agent probe --throttle ... URL..."
    )
    records = collector.directory / "results.msgpack"
    results = engine.measure_table(
        lab, collector_url=collector.url, msgpack_out=records, throttle_rows=True
    )
    console.print("[dim]then, for the blocked ones:[/dim] netsonde-agent trace ... URL...")
    traced = trace(lab, collector, records)
    # Uploaded as an agent would, signed, for the dashboard to show.
    dashboard.upload(collector, records)
    return results, traced


def run_demo(table: ScenarioTable, console: Console, keep: int | None = None) -> int:
    """The demo; with ``keep`` (a port), the dashboard stays open on the host until Ctrl-C."""
    console.rule("netsonde demo: the censor lab")
    console.print(
        f"{len(table.rows)} scenarios from {table.source}. "
        f"Building {' -- '.join(ROLES)} in network namespaces ..."
    )
    missing = [str(p) for p in engine.fingerprint_paths() if not p.is_file()]
    if missing:
        console.print(f"[yellow]fingerprint files not found ({', '.join(missing)}); "
                      "set NETSONDE_SHARED_DATA[/yellow]")  # fmt: skip
        return 2
    started = time.monotonic()
    with console.status("bringing the lab up") as spinner:
        lab = Lab(table).up(progress=lambda step: spinner.update(f"lab: {step}"))
    try:
        console.print(f"lab {lab.prefix} up in {time.monotonic() - started:.1f}s")
        with console.status("checking every censor from the agent namespace"):
            censors = run_checks(lab)
        print_checks(console, censors)
        geoip = dashboard.write_geoip(lab.state_dir / "lab.mmdb")
        with LabCollector(lab, lab.state_dir / "collector", ["--geoip", geoip]) as collector:
            console.print(
                f"collector (control, SQLite at {collector.db_url}) on {collector.url}, "
                "serving the OONI fingerprints at /api/v1/fingerprints, "
                f"the probe enrolled in $LAB/{engine.probe_state_dir(lab).name}"
            )
            with console.status("netsonde-agent probe and trace: measuring every scenario"):
                results, traced = measure(lab, collector, console)
            console.print(_verdicts_table(list(table.rows), results))
            traceable = [row for row in table.rows if row.technique in TRACEABLE]
            console.print(_traces_table(traceable, traced))
            if keep is not None:
                dashboard.keep_serving(collector, console, keep)
            else:
                console.print(
                    "The dashboard of these results: run the demo with --keep, then open "
                    f"http://127.0.0.1:{dashboard.DEFAULT_PORT}/"
                )
    finally:
        lab.down()
    measured = [row for row in table.rows if row.domain in results]
    right = [row for row in measured if results[row.domain]["verdict"] == row.expected]
    good_censors = sum(1 for c in censors if c.passed)
    later = len(table.rows) - len(measured)
    located = [row for row in traceable if _located(row, traced)]
    console.print(
        f"{good_censors}/{len(censors)} censors act as configured; netsonde named "
        f"{len(right)}/{len(measured)} blocking techniques as the table expects"
        + (f" ({later} left to a later issue)" if later else "")
        + f" and located {len(located)}/{len(traceable)} censors where they sit"
        + ". The lab is down again."
    )
    return 0 if good_censors == len(censors) and len(right) == len(measured) else 1

"""Censor lab: run the real ``netsonde-agent probe`` inside the lab's agent namespace.

One place that knows how the agent is pointed at the lab (its public resolver,
its CA, the benign name, the OONI fingerprint files, the collector, and the enrolled
identity the control asks for, which ``tests.lab.collector.LabCollector`` creates in
:func:`probe_state_dir`), shared by the end-to-end tests, the demo and the benchmarks.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.model.measurement import SiteMeasurement
from tests.lab import addresses as plan
from tests.lab.lab import Lab
from tests.lab.protocol_censors import PROTOCOL_TECHNIQUES
from tests.lab.shell import LabError
from tests.shared_data import SHARED_DATA

FINGERPRINT_FILES = ("fingerprints-http.csv", "fingerprints-dns.csv")


def record_costs(records: Path, cost: Callable[[SiteMeasurement], int | None]) -> dict[str, int]:
    """``cost`` of each wire record in a --msgpack-out file (None: not counted), by URL."""
    import msgpack  # type: ignore[import-untyped]

    from agent.wire.record import measurement_from_obj

    out = {}
    with records.open("rb") as handle:
        for obj in msgpack.Unpacker(handle, raw=False):
            m = measurement_from_obj(obj)
            if (spent := cost(m)) is not None:
                out[m.url] = spent
    return out


def fingerprint_paths() -> list[Path]:
    return [SHARED_DATA / name for name in FINGERPRINT_FILES]


def probe_state_dir(lab: Lab) -> Path:
    """Where the lab's running collector enrolled the probe: its key signs control requests."""
    return lab.state_dir / "probe-agent"


def probe_argv(
    lab: Lab, *, collector_url: str | None, options: Sequence[str] = (), command: str = "probe"
) -> list[str]:
    argv = [sys.executable, "-m", "agent.cli", command, "--timeout", "2"]
    argv += ["--resolver", plan.PUBLIC_RESOLVER, "--ca-file", str(lab.ca_file)]
    argv += ["--benign-sni", lab.table.benign_domain]
    for path in fingerprint_paths():
        argv += ["--fingerprints", str(path)]
    if collector_url is not None:
        argv += ["--collector", collector_url, "--state-dir", str(probe_state_dir(lab))]
    return [*argv, *options]


def probe(
    lab: Lab,
    urls: Sequence[str],
    *,
    collector_url: str | None,
    options: Sequence[str] = (),
    timeout: float = 300,
    command: str = "probe",
) -> list[dict[str, Any]]:
    """Measure ``urls`` from the agent namespace; one decoded --json object per URL."""
    options = ["--json", "--quiet", *options]
    argv = probe_argv(lab, collector_url=collector_url, options=options, command=command)
    done = lab.run("agent", [*argv, *urls], timeout=timeout)
    if done.returncode != 0:
        raise LabError(f"netsonde-agent probe exited {done.returncode}:\n{done.stderr}")
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    if len(results) != len(urls):
        raise LabError(f"{len(urls)} targets but {len(results)} results:\n{done.stderr}")
    return results


def throttle(
    lab: Lab, urls: Sequence[str], *, collector_url: str, options: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """``probe --throttle`` on ``urls`` through the lab collector's far end (one at a time,
    about 10 s each); one decoded --json object per URL."""
    return probe(
        lab, urls, collector_url=collector_url, options=["--throttle", *options], timeout=600
    )


def protocols(
    lab: Lab, urls: Sequence[str], *, collector_url: str, options: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """``probe --protocols`` on ``urls`` through the lab collector's far end (one at a time,
    a few seconds each); one decoded --json object per URL."""
    return probe(
        lab, urls, collector_url=collector_url, options=["--protocols", *options], timeout=300
    )


def trace(
    lab: Lab, urls: Sequence[str], *, collector_url: str, options: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """``netsonde-agent trace`` on ``urls``: each site test, then a trace of each blocked one
    (one at a time, a few seconds each), comparing with the collector's address of each
    family; one decoded --json object per URL."""
    references = ["--reference", plan.COLLECTOR, "--reference", plan.twin(plan.COLLECTOR)]
    return probe(
        lab, urls, collector_url=collector_url, options=[*references, *options], timeout=600,
        command="trace",
    )  # fmt: skip


def measure_table(
    lab: Lab,
    *,
    collector_url: str | None,
    msgpack_out: Path | None = None,
    throttle_rows: bool = False,
) -> dict[str, dict[str, Any]]:
    """Probe every row, shutdown with the uplink cut; with ``throttle_rows`` (and a collector,
    whose far end it needs) the throttle rows by their throttle test, else not at all. The
    --json results by domain, and optionally the wire records in a file."""
    options = ["--msgpack-out", str(msgpack_out)] if msgpack_out is not None else []
    # The protocol test's rows are left to it (tests.lab.protocol_censors): TCP to them is clean.
    later = ("throttle", "shutdown", *PROTOCOL_TECHNIQUES)
    rows = [row for row in lab.table.rows if row.technique not in later]
    results = probe(lab, [row.url for row in rows], collector_url=collector_url, options=options)
    throttled = [row.url for row in lab.table.by_technique("throttle")]
    if throttle_rows and collector_url is not None and throttled:
        results += throttle(lab, throttled, collector_url=collector_url, options=options)
    for row in lab.table.by_technique("shutdown"):
        lab.shutdown(True)
        try:
            results += probe(lab, [row.url], collector_url=collector_url, options=options)
        finally:
            lab.shutdown(False)
    # Results arrive in completion order, not in the order of the URLs.
    return {str(urlsplit(result["target"]).hostname): result for result in results}

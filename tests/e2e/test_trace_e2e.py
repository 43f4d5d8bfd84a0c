"""The trace end to end: ``netsonde-agent probe --trace`` in the agent namespace against every
censor the lab can locate, checked against ``tests.lab.positions``: where the censor reacts
(``censor_ttl``, ``after_hop``, the routers before it), whether it could drop (``path``), and
that injected packets give themselves away by their IP TTL. Open sites traced anyway
(``--force``) show no censor. The 20-run figures are benchmarks/bench_trace.py's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.lab import engine
from tests.lab.collector import COLLECTOR_URL, LabCollector
from tests.lab.engine import FINGERPRINT_FILES
from tests.lab.lab import Lab
from tests.lab.positions import TRACEABLE, expected_position
from tests.shared_data import shared_file

pytestmark = pytest.mark.lab

INJECTED = {"rst", "fin", "data"}


def traced(lab: Lab, urls: list[str], *options: str) -> dict[str, dict[str, Any]]:
    for path in FINGERPRINT_FILES:
        shared_file(path)
    results = engine.trace(lab, urls, collector_url=COLLECTOR_URL, options=options)
    return {str(urlsplit(r["target"]).hostname): r for r in results}


def test_every_traceable_row_is_located_where_the_table_puts_it(
    lab: Lab, collector: LabCollector
) -> None:
    rows = [row for row in lab.table.rows if row.technique in TRACEABLE]
    assert len(rows) >= 11, [row.domain for row in rows]
    results = traced(lab, [row.url for row in rows])
    wrong = []
    for row in rows:
        expected = expected_position(row)
        assert expected is not None
        evidence = results[row.domain]["evidence"]
        got = (
            results[row.domain]["verdict"], evidence.get("censor_ttl"), evidence.get("after_hop"),
            tuple(str(evidence.get("routers", "")).split()), evidence.get("path"),
        )  # fmt: skip
        want = (
            row.expected,
            expected.censor_ttl,
            expected.after_hop,
            expected.routers,
            expected.path,
        )
        if got != want:
            wrong.append(f"{row.domain} ({row.technique}@{row.hop}): got {got}, want {want}")
        if evidence.get("reaction") in INJECTED:
            # Forged by a box nearer than the server: its TTL gives it away.
            ttls = (evidence.get("injected_ttl"), evidence.get("server_ttl"))
            if None in ttls or ttls[0] == ttls[1]:
                wrong.append(f"{row.domain}: injected packet not told apart: {evidence}")
    assert not wrong, "\n".join(wrong)


def test_a_trace_of_an_open_site_never_shows_a_censor(lab: Lab, collector: LabCollector) -> None:
    rows = lab.table.by_technique("clean")
    results = traced(lab, [row.url for row in rows], "--force")
    for row in rows:
        result = results[row.domain]
        assert result["verdict"] == "ok", (row.domain, result["evidence"])
        assert "censor_ttl" not in result["evidence"], (row.domain, result["evidence"])
        assert results[row.domain]["trace"]["attempts"], row.domain  # it did trace


def test_without_cap_net_raw_tracing_says_why_once_and_the_site_tests_run(
    lab: Lab, collector: LabCollector
) -> None:
    rows = [row for row in lab.table.rows if row.technique in ("sni-reset", "host-reset")]
    argv = engine.probe_argv(lab, collector_url=None, options=["--trace", "--json", "--quiet"])
    # The same root process, its CAP_NET_RAW dropped from every set (util-linux setpriv).
    drop = ["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw", "--"]
    done = lab.run("agent", [*drop, *argv, *(row.url for row in rows)], timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("tracing is unavailable") == 1, done.stderr
    assert "CAP_NET_RAW" in done.stderr, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    by_domain = {str(urlsplit(r["target"]).hostname): r for r in results}
    for row in rows:  # the site tests' own verdicts, with no trace
        assert by_domain[row.domain]["verdict"] == row.expected, by_domain[row.domain]
        assert by_domain[row.domain].get("trace") is None, by_domain[row.domain]


def test_scapy_is_loaded_by_the_trace_alone() -> None:
    code = (
        "import sys, agent.cli.main as m; m.build_parser();"
        "import agent.site, agent.daemon.lean;"
        "print('scapy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"

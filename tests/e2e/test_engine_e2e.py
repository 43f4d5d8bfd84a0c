"""The engine end to end: the real `netsonde-agent probe` in the agent namespace, the real
collector in the net namespace as its control, and every scenario row's expected verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.lab import engine
from tests.lab.collector import COLLECTOR_URL, LabCollector
from tests.lab.engine import FINGERPRINT_FILES
from tests.lab.lab import Lab
from tests.lab.protocol_censors import PROTOCOL_TECHNIQUES
from tests.lab.scenarios import Scenario
from tests.shared_data import shared_file

pytestmark = pytest.mark.lab

# The shutdown row is measured with the uplink cut; throttle rows by their throttle test.
LATER = {"shutdown", *PROTOCOL_TECHNIQUES}  # the protocol rows: tests/e2e/test_protocols_e2e.py
CLEAN_REPEATS = 20
UNREACHABLE_COLLECTOR = "http://198.51.100.11:8080"  # nothing listens or routes there


def probe(lab: Lab, urls: list[str], *options: str, control: bool = True) -> list[dict[str, Any]]:
    for path in FINGERPRINT_FILES:
        shared_file(path)
    return engine.probe(
        lab, urls, collector_url=COLLECTOR_URL if control else None, options=options
    )


def by_host(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(urlsplit(r["target"]).hostname): r for r in results}


def mismatches(rows: list[Scenario], results: list[dict[str, Any]]) -> list[str]:
    seen = by_host(results)
    wrong = []
    for row in rows:
        result = seen[row.domain]
        evidence = result["evidence"]
        hop = int(row.params.get("redirect_hop", "0"))
        if (
            result["verdict"] != row.expected
            or (row.trigger is not None and evidence.get("trigger") != row.trigger)
            or evidence.get("redirect_hop", 0) != hop
            or evidence.get("failure") != row.params.get("failure", evidence.get("failure"))
            # A family in the evidence where the row has none: the lab's IPv6 censor failed.
            or evidence.get("family") != row.family
        ):
            wrong.append(
                f"{row.domain} ({row.technique}): expected {row.expected}"
                f"{f' trigger={row.trigger}' if row.trigger else ''}"
                f"{f' family={row.family}' if row.family else ''}, "
                f"got {result['verdict']} {evidence}"
            )
    return wrong


def test_every_scenario_gets_its_expected_verdict(lab: Lab, collector: LabCollector) -> None:
    rows = [row for row in lab.table.rows if row.technique not in LATER]
    sites = [row.url for row in rows if row.technique != "throttle"]
    throttled = [row.url for row in rows if row.technique == "throttle"]
    results = probe(lab, sites) + engine.throttle(lab, throttled, collector_url=COLLECTOR_URL)
    assert not mismatches(rows, results)


def test_clean_rows_stay_ok_in_repeated_runs(lab: Lab, collector: LabCollector) -> None:
    clean = [row for row in lab.table.rows if row.expected == "ok"]
    urls = [f"{row.url}?run={n}" for n in range(CLEAN_REPEATS) for row in clean]
    results = probe(lab, urls, "--concurrency", "32")
    false_positives = [
        (r["target"], r["verdict"], r["evidence"]) for r in results if r["verdict"] != "ok"
    ]
    assert not false_positives


def test_shutdown_is_offline(lab: Lab, collector: LabCollector) -> None:
    rows = lab.table.by_technique("shutdown")
    assert rows, "the table has a shutdown row"
    lab.shutdown(True)
    try:
        results = probe(lab, [rows[0].url])
    finally:
        lab.shutdown(False)
    assert not mismatches(rows, results)


def test_without_a_collector_local_evidence_still_decides(lab: Lab) -> None:
    """No control: injection, SNI and Host swaps, bogons and fingerprints still tell."""
    local = ("dns-inject", "sni-reset", "host-reset", "dns-bogon", "http-blockpage", "clean")
    rows = [row for row in lab.table.rows if row.technique in local]
    results = probe(lab, [row.url for row in rows], control=False)
    assert not mismatches(rows, results)


def test_bad_input_is_reported_and_the_rest_is_measured(lab: Lab, tmp_path: Path) -> None:
    """An unknown target, a malformed CSV row, an unreadable fingerprint file and an
    unreachable collector each get a clear message; the good targets are still measured."""
    sni = lab.table.by_technique("sni-reset")[0]
    clean = lab.table.benign
    test_list = tmp_path / "list.csv"
    test_list.write_text(
        "url,category_code,category_description,date_added,source,notes\n"
        f"{clean.url},NEWS,News,2024-01-01,citizenlab,\n"
        "not a url at all,NEWS,News,2024-01-01,citizenlab,\n"
    )
    argv = engine.probe_argv(lab, collector_url=UNREACHABLE_COLLECTOR)
    argv += ["--json", "--fingerprints", str(tmp_path / "missing.csv")]
    done = lab.run("agent", [*argv, "gopher://x.org/", f"@{test_list}", sni.url], timeout=120)
    assert done.returncode == 0, done.stderr
    stderr = " ".join(done.stderr.split())
    assert "gopher://x.org/" in stderr
    assert f"{test_list}:3" in stderr
    assert "missing.csv" in stderr
    assert "collector unreachable" in stderr
    results = by_host([json.loads(line) for line in done.stdout.splitlines() if line.strip()])
    assert set(results) == {clean.domain, sni.domain}
    assert results[clean.domain]["verdict"] == "ok"
    # No control: the SNI swap alone shows the filtering.
    assert (results[sni.domain]["verdict"], results[sni.domain]["evidence"]["trigger"]) == (
        "tls.reset",
        "sni",
    )


def test_an_agent_that_is_not_enrolled_is_told_how_and_decides_locally(
    lab: Lab, collector: LabCollector, tmp_path: Path
) -> None:
    """The control serves enrolled agents only: without an identity the probe never asks it,
    says once how to enrol, and still names what local evidence shows."""
    sni = lab.table.by_technique("sni-reset")[0]
    argv = engine.probe_argv(lab, collector_url=COLLECTOR_URL, options=["--json"])
    argv += ["--state-dir", str(tmp_path / "nobody"), sni.url, lab.table.benign.url]
    done = lab.run("agent", argv, timeout=120)
    assert done.returncode == 0, done.stderr
    stderr = " ".join(done.stderr.split())
    assert stderr.count("the control needs an enrolled agent") == 1
    assert f"netsonde-agent enroll --collector {COLLECTOR_URL}" in stderr
    results = by_host([json.loads(line) for line in done.stdout.splitlines() if line.strip()])
    assert {r["control_failure"] for r in results.values()} == {"control_unauthenticated"}
    assert (results[sni.domain]["verdict"], results[sni.domain]["evidence"]["trigger"]) == (
        "tls.reset",
        "sni",
    )

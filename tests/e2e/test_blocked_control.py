"""A control blocked for the agent, end to end: the ISP drops everything the agent sends to
the collector, so every control request times out mid-run, as when a censor blocks the
measurement network itself. Verdicts then rest on local evidence: what the SNI and Host
swaps, injection, bogons and fingerprints show still decides, everything else is
``inconclusive``, and nothing is ``ok`` after the agent saw a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from agent.model import failures
from tests.lab import addresses as plan
from tests.lab import engine
from tests.lab.collector import COLLECTOR_URL, LabCollector
from tests.lab.lab import Lab
from tests.lab.protocol_censors import PROTOCOL_TECHNIQUES
from tests.lab.scenarios import Scenario

pytestmark = pytest.mark.lab

# Decided by tests of their own (probe --throttle, --protocols), or only with the link cut.
LATER = {"throttle", "shutdown", *PROTOCOL_TECHNIQUES}
# Rows whose technique local evidence shows: the SNI or Host swap, injection, a bogon or a
# resolver failure the public resolvers contradict, a fingerprint.
LOCAL = {
    "clean", "dns-nxdomain", "dns-bogon", "dns-redirect", "dns-inject", "sni-reset", "sni-drop",
    "host-reset", "host-drop", "http-blockpage", "dns-ghost", "sni-fin", "host-fin", "sni-onpath",
}  # fmt: skip
CUT = ["FORWARD", "-d", plan.COLLECTOR, "-j", "DROP"]
BLOCKED = {failures.CONTROL_TIMEOUT, failures.CONTROL_UNREACHABLE}


@pytest.fixture
def control_blocked(lab: Lab, collector: LabCollector) -> Iterator[None]:
    lab.run("isp", ["iptables", "-I", *CUT], check=True)
    try:
        yield
    finally:
        lab.run("isp", ["iptables", "-D", *CUT], check=True)


def judged_wrong(row: Scenario, result: dict[str, Any]) -> str | None:
    verdict, evidence = result["verdict"], result["evidence"]
    trigger_ok = row.trigger is None or evidence.get("trigger") == row.trigger
    if row.technique in LOCAL and (verdict != row.expected or not trigger_ok):
        return "local evidence should still decide"
    if verdict == "ok" and row.expected != "ok":
        return "ok from local evidence alone after a failure"
    if verdict not in (row.expected, "inconclusive"):
        return "an accusation the table does not make"
    if result["control_failure"] not in BLOCKED:
        return f"the control was not blocked ({result['control_failure']})"
    return None


def test_a_blocked_control_leaves_local_evidence_and_no_false_ok(
    lab: Lab, control_blocked: None
) -> None:
    rows = [row for row in lab.table.rows if row.technique not in LATER]
    results = engine.probe(
        lab, [row.url for row in rows], collector_url=COLLECTOR_URL, options=["--concurrency", "32"]
    )
    seen = {str(urlsplit(r["target"]).hostname): r for r in results}
    wrong = []
    for row in rows:
        result = seen[row.domain]
        if (why := judged_wrong(row, result)) is not None:
            wrong.append(
                f"{row.domain} ({row.technique}, expected {row.expected}): {why}: "
                f"{result['verdict']} {result['evidence']}"
            )
    assert not wrong

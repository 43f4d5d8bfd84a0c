"""The agent daemon end to end in the censor lab: `netsonde-agent run` as a real process in the
agent namespace, measuring the scenario table on a short schedule and uploading to the real
collector (SQLite) in the net namespace; then a shutdown with a kill -9 in the middle of it.

(a) after three measure cycles /api/v1/blocking says what the scenario table expects, and the
    blocked rows have been traced (agent.daemon.trace);
(b) the uplink is cut for more than two cycles, and the agent is killed with SIGKILL and
    restarted during the outage: the restarted daemon spools its first results within one
    interval plus the probe timeouts, the link still cut (it measures the cached collector
    list and the local file at once, without waiting on the unreachable collector);
(c) once the link is back and the spool drained, every measurement the agent counted as
    acknowledged is stored at the collector exactly once;
(d) the outage is in /api/v1/outages, its ends within one check interval of the cut and the
    restoration (plus the check's own duration);
and SIGTERM stops the daemon with status 0 within 10 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.serving import serving
from tests.lab.agent import LabAgent, write_test_list
from tests.lab.collector import LabCollector, blocking_mismatches
from tests.lab.lab import Lab
from tests.lab.protocol_censors import PROTOCOL_TECHNIQUES

pytestmark = pytest.mark.lab

# Throttling is not decided yet; the shutdown row is "offline" only with the link cut.
LATER = {"throttle", "shutdown", *PROTOCOL_TECHNIQUES}
INTERVAL = 6.0  # seconds between measure runs
CHECK = 2.0  # seconds between connectivity checks
# An offline check lasts until its probes time out (the collector's health request, then the
# resolvers); it is dated by its start, so an edge can be seen this much later.
CHECK_SLACK = 2.0
# How soon a daemon restarted in the shutdown must spool results: its first run starts at
# once; a target then waits on DNS (dns_timeout 2 s), the control (the control client's
# max(10 s, 2 x timeout)) and the connectivity check a failed target asks for (the
# collector's 10 s, then the resolvers' 5 s); one interval of slack and 5 s to start.
FIRST_RESULTS = INTERVAL + 2 + 10 + 10 + 5 + 5


@pytest.fixture(scope="module")
def served(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCollector]:
    """The collector, also serving the table's URLs as its test list."""
    directory = tmp_path_factory.mktemp("collector")
    urls = [row.url for row in lab.table.rows if row.technique not in LATER]
    testlist = write_test_list(directory / "served.csv", urls)
    yield from serving(LabCollector(lab, directory, ["--testlist", str(testlist)]))


def wait_for(what: str, ready: Callable[[], bool], timeout: float, agent: LabAgent) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if agent.process is not None and agent.process.poll() is not None:
            pytest.fail(f"the daemon exited ({agent.process.returncode}):\n{agent.log_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f}s; {agent.status()}\n{agent.log_text()}")
        time.sleep(0.25)


def stored_ids(collector: LabCollector, agent_id: str) -> list[str]:
    """Every measurement id the collector holds, walking /measurements page by page."""
    ids: list[str] = []
    cursor = None
    while True:
        page: dict[str, Any] = collector.get_json(
            "/api/v1/measurements?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        )
        for m in page["measurements"]:
            assert m["agent_id"] == agent_id  # the only agent of this collector
            ids.append(m["id"])
        cursor = page["next_cursor"]
        if not cursor:
            return ids


@dataclass
class Outage:
    cut_ms: int
    restored_ms: int
    killed: dict[str, int]  # the agent's totals when it was killed during the outage


def test_daemon_measures_survives_a_shutdown_and_a_kill_and_uploads_once(
    lab: Lab, served: LabCollector, tmp_path: Path
) -> None:
    rows = [row for row in lab.table.rows if row.technique not in LATER]
    # The local file and the collector's list are the same URLs: each is measured once a run.
    agent = LabAgent(
        lab, tmp_path / "agent",
        collector_url=served.url,
        urls=[row.url for row in rows],
        schedule={"interval": f"{INTERVAL:.0f}s", "connectivity_check": f"{CHECK:.0f}s"},
        testlist={"from_collector": True, "refresh": "10s"},
    )  # fmt: skip
    agent_id = agent.enroll(served.db_url)
    agent.start()
    try:
        _three_cycles(lab, served, agent, rows)
        outage = _shutdown_with_a_restart(lab, agent)
        _drained_once(served, agent, agent_id, outage, len(rows))
        _outage_as_seen(served, agent_id, outage)
    finally:
        if agent.process is not None and agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait()


def _three_cycles(lab: Lab, served: LabCollector, agent: LabAgent, rows: list[Any]) -> None:
    """(a) three cycles measured and uploaded, then the matrix."""

    def uploaded() -> bool:
        # Three runs ended and all they spooled acknowledged: traces of the blocked rows
        # (agent.daemon.trace) are spooled too, so a count of records alone comes too soon.
        totals = agent.status().get("totals", {})
        return totals.get("runs", 0) >= 3 and totals.get("acked") == totals.get("spooled")

    wait_for("three measure cycles uploaded", uploaded, 90, agent)
    assert agent.status()["meta"]["testlist_failure"] == ""
    matrix = served.get_json("/api/v1/blocking")
    assert not blocking_mismatches(lab.table, matrix, [r.domain for r in rows], at_least=3)
    # The daemon traced what its runs found blocked: a trace names the censor's TTL.
    page = served.get_json("/api/v1/measurements?limit=1000")["measurements"]
    located = {m["url"] for m in page if m.get("trace") and "censor_ttl" in m["evidence"]}
    assert "https://x.com/" in located, sorted(located)


def _shutdown_with_a_restart(lab: Lab, agent: LabAgent) -> Outage:
    """(b) the shutdown, with a kill -9 and a restart in the middle of it."""
    runs = agent.status()["totals"]["runs"]
    cut_ms = int(time.time() * 1000)
    lab.shutdown(True)
    try:
        wait_for(
            "two measure runs with the link cut",
            lambda: agent.status()["totals"]["runs"] >= runs + 2,
            4 * INTERVAL + 20,
            agent,
        )
        during = agent.status()
        assert during["meta"]["connectivity"] == "offline"
        assert during["spool"]["records"] > 0  # measured, waiting for the link
        agent.kill()
        killed = agent.status()["totals"]
        agent.start()
        wait_for(
            "results spooled by the restarted daemon, the link still cut",
            lambda: agent.status()["totals"]["spooled"] > killed["spooled"],
            FIRST_RESULTS,
            agent,
        )
        assert lab.is_shut_down()
        wait_for(
            "a measure run after the restart",
            lambda: agent.status()["totals"]["runs"] >= killed["runs"] + 1,
            2 * INTERVAL + 20,
            agent,
        )
    finally:
        restored_ms = int(time.time() * 1000)
        lab.shutdown(False)
    return Outage(cut_ms, restored_ms, killed)


def _drained_once(
    served: LabCollector, agent: LabAgent, agent_id: str, outage: Outage, rows: int
) -> None:
    """(c) drained: what the agent counts as acknowledged is at the collector, once."""

    def drained() -> bool:
        status = agent.status()
        spooled_then = outage.killed["spooled"]
        return status["spool"]["records"] == 0 and status["totals"]["acked"] > spooled_then

    wait_for("the spool drained after the outage", drained, 40, agent)

    def outage_ended() -> bool:
        # The first online check after the link came back travels in a later heartbeat
        # than the records: the outage ends at the collector only once it has arrived.
        found = served.get_json(f"/api/v1/outages?agent={agent_id}")["outages"]
        return any(o["kind"] == "offline" and o["end_ms"] is not None for o in found)

    wait_for("the end of the outage at the collector", outage_ended, 20, agent)
    code, took = agent.terminate()
    assert (code, took < 10) == (0, True), (code, took, agent.log_text()[-3000:])

    totals = agent.status()["totals"]
    ids = stored_ids(served, agent_id)
    assert len(ids) == len(set(ids)), "a measurement is stored twice"
    assert totals["evicted"] == totals["refused"] == 0
    # A run may have spooled results after the last upload: they wait, never lost.
    assert totals["spooled"] == totals["acked"] + totals["waiting"]
    assert len(ids) == totals["acked"]
    assert totals["acked"] > outage.killed["spooled"]  # the outage's backlog went up too
    offline = sum(
        r["counts"].get("offline", 0) for r in served.get_json("/api/v1/blocking")["rows"]
    )
    assert offline >= rows  # at least one whole run measured during the outage


def _outage_as_seen(served: LabCollector, agent_id: str, outage: Outage) -> None:
    """(d) the outage, as the collector saw it from the agent's connectivity checks."""
    outages = served.get_json(f"/api/v1/outages?agent={agent_id}")["outages"]
    ours = [o for o in outages if agent_id in o["agents"] and o["kind"] == "offline"]
    assert len(ours) == 1, outages
    found = ours[0]
    tolerance = (CHECK + CHECK_SLACK) * 1000
    assert abs(found["start_ms"] - outage.cut_ms) <= tolerance, (found, outage.cut_ms)
    assert found["end_ms"] is not None, found
    assert abs(found["end_ms"] - outage.restored_ms) <= tolerance, (found, outage.restored_ms)

"""Browser tests: the lab's data at a real collector, opened from the host through a relay.

The real agent daemon (``netsonde-agent run``) measures the scenario table from the agent
namespace for a few cycles and uploads to the real collector in the net namespace, which
looks the agent's address up in a GeoIP database made here (the lab's ISP side is AS64500,
PK: a documentation AS number); then the uplink is cut for a few connectivity checks, so
there is an outage to show. The daemon keeps running while the tests look. Chromium runs on
the host and reaches the collector at 127.0.0.1 through ``tests.lab.relay``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.serving import serving
from tests.lab import addresses as plan
from tests.lab.agent import LabAgent
from tests.lab.collector import PORT, LabCollector
from tests.lab.dashboard import LAB_ASN, LAB_CC, write_geoip
from tests.lab.lab import Lab
from tests.lab.protocol_censors import PROTOCOL_TECHNIQUES
from tests.lab.relay import Relay
from tests.lab.scenarios import Scenario
from tests.lab.shell import LabError

__all__ = ["LAB_ASN", "LAB_CC", "LATER", "LabSite", "lab_site"]

# Decided by tests of their own (probe --throttle, --protocols), or only with the link cut.
LATER = {"throttle", "shutdown", *PROTOCOL_TECHNIQUES}
INTERVAL, CHECK = 6.0, 2.0  # seconds between measure runs, between connectivity checks
CYCLES = 3  # before the cut: the default incident threshold is 3 blocking measurements


@dataclass
class LabSite:
    collector: LabCollector
    relay: Relay
    agent: LabAgent
    agent_id: str
    rows: list[Scenario]  # the table's rows the agent measures

    @property
    def url(self) -> str:
        return self.relay.url


def _wait(what: str, ready: Callable[[], bool], timeout: float, agent: LabAgent) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if agent.process is not None and agent.process.poll() is not None:
            pytest.fail(f"the daemon exited:\n{agent.log_text()[-3000:]}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f}s; {agent.status()}", pytrace=False)
        time.sleep(0.25)


def _measured(site: LabSite) -> None:
    """CYCLES runs uploaded, then an outage (the uplink cut for two offline checks) that has
    ended at the collector."""
    agent, rows = site.agent, len(site.rows)
    _wait(
        f"{CYCLES} measure cycles uploaded",
        lambda: agent.status().get("totals", {}).get("acked", 0) >= CYCLES * rows,
        30 + CYCLES * INTERVAL * 4,
        agent,
    )
    site.agent.lab.shutdown(True)
    try:
        # Two offline checks at least (an outage incident needs two); an offline check
        # lasts until its probes time out, so they come slower than CHECK.
        def meta() -> dict[str, Any]:
            return agent.status()["meta"]  # type: ignore[no-any-return]

        _wait("an offline check", lambda: meta()["connectivity"] == "offline", 60, agent)
        first = meta()["connectivity_checked_ms"]
        _wait(
            "a second offline check", lambda: meta()["connectivity_checked_ms"] > first, 60, agent
        )
    finally:
        site.agent.lab.shutdown(False)

    def outage_ended() -> bool:
        found = site.collector.get_json("/api/v1/outages")["outages"]
        return any(o["kind"] == "offline" and o["end_ms"] is not None for o in found)

    _wait("the outage's end at the collector", outage_ended, 60, agent)


def lab_site(lab: Lab, directory: Path) -> Iterator[LabSite]:
    """The body of a module fixture: the site, measured; everything stopped after."""
    geoip = write_geoip(directory / "lab.mmdb")
    collector = LabCollector(lab, directory / "collector", ["--geoip", geoip])
    for running in serving(collector):
        rows = [row for row in lab.table.rows if row.technique not in LATER]
        agent = LabAgent(
            lab, directory / "agent", collector_url=collector.url, urls=[r.url for r in rows],
            schedule={"interval": f"{INTERVAL:.0f}s", "connectivity_check": f"{CHECK:.0f}s"},
        )  # fmt: skip
        try:
            relay = Relay(lab, "net", plan.COLLECTOR, PORT).start()
        except LabError as exc:
            pytest.fail(str(exc), pytrace=False)
        try:
            agent_id = agent.enroll(running.db_url)
            agent.start()
            site = LabSite(running, relay, agent, agent_id, rows)
            _measured(site)
            yield site
        finally:
            if agent.process is not None and agent.process.poll() is None:
                agent.terminate()
            relay.stop()

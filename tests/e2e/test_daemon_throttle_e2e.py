"""The daemon's throttle job end to end: ``netsonde-agent run`` in the agent namespace tests the
targets its collector flags (``serve --farend-target``) through the collector's far end,
behind the lab's throttlers, and uploads the results: ``/api/v1/blocking`` says ``throttled``
for every throttle row, and only that."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.model.addresses import TEST_NETWORKS
from tests.lab.agent import LabAgent
from tests.lab.collector import LabCollector, blocking_mismatches
from tests.lab.lab import Lab

pytestmark = pytest.mark.lab

# One site test a run and two throttle tests (about 10 s and 4 s), uploaded every second.
DEADLINE = 90.0


def test_the_daemon_throttle_tests_what_the_collector_flags(lab: Lab, tmp_path: Path) -> None:
    rows = lab.table.by_technique("throttle")
    flags = [option for row in rows for option in ("--farend-target", row.url)]
    with LabCollector(lab, tmp_path / "collector", flags) as collector:
        agent = LabAgent(
            lab, tmp_path / "agent",
            collector_url=collector.url,
            urls=[lab.table.benign.url],
            schedule={"interval": "1h"},
            # The far end is at a documentation address, which the agent enters on the
            # collector's say-so only when its operator allows it.
            testlist={"allow_networks": [str(net) for net in TEST_NETWORKS]},
            throttle={"interval": "1h", "max_targets": 5},
        )  # fmt: skip
        agent.enroll(collector.db_url)
        agent.start()
        try:
            domains = [row.domain for row in rows]
            deadline = time.monotonic() + DEADLINE
            while blocking_mismatches(lab.table, collector.get_json("/api/v1/blocking"), domains):
                if agent.process is not None and agent.process.poll() is not None:
                    pytest.fail(f"the daemon exited:\n{agent.log_text()}")
                if time.monotonic() > deadline:
                    matrix = collector.get_json("/api/v1/blocking")
                    pytest.fail(f"{blocking_mismatches(lab.table, matrix, domains)}\n"
                                f"{agent.log_text()[-3000:]}")  # fmt: skip
                time.sleep(1.0)
            assert "throttle: 2 of 2 targets tested" in agent.log_text()
            code, _ = agent.terminate()
            assert code == 0
        finally:
            if agent.process is not None and agent.process.poll() is None:
                agent.process.kill()
                agent.process.wait()

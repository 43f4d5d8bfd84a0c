"""Degradation end to end in the censor lab: the agent daemon (``netsonde-agent run``) samples
a benign goodput through the lab collector's far end with every connectivity check; the
whole link slows down (the ``link-slow`` row, a token bucket on every flow) and a degraded
period shows in /api/v1/outages while it lasts; once the link is back the period ends, and
no degraded period covers the time outside the slowdown."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from collector.storage.schema import goodput
from tests.e2e.serving import serving
from tests.lab.agent import LabAgent
from tests.lab.checks import rate_kbps
from tests.lab.collector import LabCollector
from tests.lab.lab import Lab
from tests.lab.throttling import set_link_condition

pytestmark = pytest.mark.lab

CHECK = 3.0  # seconds between connectivity checks, each with a goodput sample
BASELINE = 7  # samples before the slowdown: the baseline needs 5
DEGRADED = "/api/v1/outages?kind=degraded"


@pytest.fixture(scope="module")
def served(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCollector]:
    yield from serving(LabCollector(lab, tmp_path_factory.mktemp("collector")))


def samples(collector: LabCollector) -> int:
    engine = create_engine(collector.db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(goodput)).scalar_one())
    finally:
        engine.dispose()


def wait_for(what: str, ready: Callable[[], bool], timeout: float, agent: LabAgent) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if agent.process is not None and agent.process.poll() is not None:
            pytest.fail(f"the daemon exited ({agent.process.returncode}):\n{agent.log_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f}s\n{agent.log_text()[-3000:]}")
        time.sleep(0.5)


def periods(collector: LabCollector, query: str = "") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = collector.get_json(DEGRADED + query)["outages"]
    return found


def test_a_whole_link_slowdown_is_a_degraded_period_while_it_lasts(
    lab: Lab, served: LabCollector, tmp_path: Any
) -> None:
    [slow] = lab.table.by_technique("link-slow")
    agent = LabAgent(
        lab, tmp_path / "agent", collector_url=served.url, urls=[lab.table.benign.url],
        # A measure run every 20 s keeps full mode, which takes the samples, from going lean.
        schedule={"interval": "20s", "connectivity_check": f"{CHECK:.0f}s", "upload": "2s",
                  "goodput_every": 1},
        testlist={"allow_networks": ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]},
    )  # fmt: skip
    agent.enroll(served.db_url)
    agent.start()
    try:
        wait_for("a baseline", lambda: samples(served) >= BASELINE, 120, agent)
        assert periods(served) == []
        on_ms = int(time.time() * 1000)
        set_link_condition(lab, slow, True)
        try:
            wait_for("a degraded period", lambda: bool(periods(served)), 120, agent)
            [during] = periods(served)
            assert during["end_ms"] is None
            assert during["agent_count"] == 1
            assert during["start_ms"] >= on_ms - CHECK * 1000
            # Near the link's rate (its token bucket's burst lets a little more through).
            limit = rate_kbps(slow.params.get("rate", "2mbit"))
            assert during["goodput_kbps"] <= 1.25 * limit < during["baseline_kbps"]
        finally:
            off_ms = int(time.time() * 1000)
            set_link_condition(lab, slow, False)
        wait_for("its end", lambda: periods(served)[0]["end_ms"] is not None, 120, agent)
        [period] = periods(served)
        # It ends with the first normal sample after the slowdown, a check or two later.
        assert off_ms <= period["end_ms"] <= off_ms + 4 * CHECK * 1000 + 20_000
        assert periods(served, f"&until={on_ms - int(CHECK * 1000)}") == []
        assert periods(served, f"&since={period['end_ms']}") == []
    finally:
        agent.terminate()

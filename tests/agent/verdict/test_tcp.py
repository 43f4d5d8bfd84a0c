"""The verdict's TCP rules (docs/design/002-verdicts.md): connections refused, reset or
dropped, for the agent alone or for everyone."""

from __future__ import annotations

import pytest

from agent.model import failures as f
from agent.model.measurement import Verdict
from tests.agent.observations import SITE_IP, endpoint, vantage
from tests.agent.verdict.cases import OTHER_IP, assert_verdict, judge


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (f.GENERIC_TIMEOUT, "tcp.timeout"),
        (f.CONNECTION_RESET, "tcp.reset"),
        (f.CONNECTION_ABORTED, "tcp.reset"),
        (f.CONNECTION_REFUSED, "tcp.refused"),
        (f.HOST_UNREACHABLE, "tcp.refused"),
        (f.NETWORK_UNREACHABLE, "tcp.refused"),
    ],
)
def test_tcp_blocked_while_control_connects(failure: str, expected: str) -> None:
    agent = vantage(endpoints=(endpoint(tcp=failure),))
    assert_verdict(judge(agent, vantage()), expected, trigger="ip", ip=SITE_IP, failure=failure)


def test_unclassified_tcp_failure_is_inconclusive() -> None:
    agent = vantage(endpoints=(endpoint(tcp=f.unknown("EACCES")),))
    assert_verdict(judge(agent, vantage()), "inconclusive", reason="unclassified failure")


def test_tcp_down_for_everyone() -> None:
    """The lab's insidevoa.com row: nothing listens, both are refused."""
    agent = vantage(endpoints=(endpoint(tcp=f.CONNECTION_REFUSED),))
    control = vantage(endpoints=(endpoint(tcp=f.CONNECTION_REFUSED),))
    assert_verdict(
        judge(agent, control),
        "down",
        failure=f.CONNECTION_REFUSED,
        control_failure=f.CONNECTION_REFUSED,
    )


def test_tcp_failing_differently_from_control_is_down_too() -> None:
    """The control cannot connect either: the site is down for it, whatever the failure."""
    agent = vantage(endpoints=(endpoint(tcp=f.GENERIC_TIMEOUT),))
    control = vantage(endpoints=(endpoint(tcp=f.CONNECTION_REFUSED),))
    assert_verdict(
        judge(agent, control),
        "down",
        failure=f.GENERIC_TIMEOUT,
        control_failure=f.CONNECTION_REFUSED,
    )


def test_tcp_failure_without_control_is_inconclusive() -> None:
    agent = vantage(endpoints=(endpoint(tcp=f.GENERIC_TIMEOUT),))
    assert_verdict(judge(agent), "inconclusive", failure=f.GENERIC_TIMEOUT)
    # A control that measured other IPs only is no comparison either.
    control = vantage(OTHER_IP, endpoints=(endpoint(OTHER_IP),))
    agent_same_ip = vantage(OTHER_IP, endpoints=(endpoint(SITE_IP, tcp=f.GENERIC_TIMEOUT),))
    assert judge(agent_same_ip, control).verdict == "inconclusive"


def test_some_endpoints_connecting_is_enough() -> None:
    agent = vantage(
        SITE_IP, OTHER_IP, endpoints=(endpoint(SITE_IP, tcp=f.GENERIC_TIMEOUT), endpoint(OTHER_IP))
    )
    assert judge(agent, vantage(SITE_IP, OTHER_IP)) == Verdict("ok")
    # Without a control the failure is unexplained: never ok from local evidence alone.
    assert_verdict(
        judge(agent), "inconclusive", ip=SITE_IP, failure=f.GENERIC_TIMEOUT, reason="no control"
    )

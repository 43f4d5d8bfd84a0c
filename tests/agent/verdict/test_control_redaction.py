"""The verdict when the control dropped non-public addresses from its DNS answer
(docs/design/002-verdicts.md, "The control's own DNS answer"): what it could not measure
must neither look like tampering nor hide it."""

from __future__ import annotations

from agent.model import failures as f
from agent.model.measurement import Verdict
from tests.agent.observations import SITE_IP, vantage
from tests.agent.verdict.cases import assert_verdict, judge

# The control's resolver answered only private addresses; it returns none of them.
NO_PUBLIC = vantage(failure=f.DNS_NON_PUBLIC_ANSWER, endpoints=())


def test_a_private_answer_the_control_also_got_is_not_a_bogon() -> None:
    assert judge(vantage("10.0.0.5"), NO_PUBLIC) == Verdict("ok")
    assert judge(vantage("10.0.0.5"), vantage()).verdict == "dns.bogon"


def test_a_resolver_failure_against_no_public_address_is_inconclusive() -> None:
    agent = vantage(failure=f.DNS_NXDOMAIN, endpoints=())
    assert_verdict(
        judge(agent, NO_PUBLIC),
        "inconclusive",
        failure=f.DNS_NXDOMAIN,
        control_failure=f.DNS_NON_PUBLIC_ANSWER,
        reason="no public address",
    )


def test_a_public_answer_against_no_public_address_is_judged_locally() -> None:
    assert judge(vantage(), NO_PUBLIC) == Verdict("ok")


def test_a_bogon_beside_the_sites_own_address_hides_nothing() -> None:
    """The site publishes a private address too: the control drops it, the agent's
    resolver passes it on with the real one."""
    agent = vantage(SITE_IP, "10.0.0.5")
    assert judge(agent, vantage()) == Verdict("ok")
    assert judge(vantage("10.0.0.5"), vantage()).verdict == "dns.bogon"


def test_without_a_control_a_bogon_beside_a_public_address_is_still_one() -> None:
    assert_verdict(judge(vantage(SITE_IP, "10.0.0.5")), "dns.bogon", addresses="10.0.0.5")

"""The verdict when the control dropped non-public addresses from its DNS answer
(docs/design/002-verdicts.md, "The control's own DNS answer"): what it could not measure
must neither look like tampering nor hide it."""

from __future__ import annotations

from agent.model import failures as f
from agent.model.measurement import Verdict
from tests.agent.observations import SITE_IP, endpoint, exchange, reply, vantage
from tests.agent.verdict.cases import assert_verdict, judge

# The control's resolver answered only private addresses; it returns none of them.
NO_PUBLIC = vantage(failure=f.DNS_NON_PUBLIC_ANSWER, endpoints=())


def test_a_private_answer_the_control_also_got_is_not_a_bogon() -> None:
    assert judge(vantage("10.0.0.5"), NO_PUBLIC) == Verdict("ok")
    assert judge(vantage("10.0.0.5"), vantage()).verdict == "dns.bogon"


def test_a_resolver_failure_against_no_public_address_is_down() -> None:
    """No one outside can reach the name either: a failure the control shares."""
    agent = vantage(failure=f.DNS_NXDOMAIN, endpoints=())
    assert_verdict(
        judge(agent, NO_PUBLIC),
        "down",
        failure=f.DNS_NXDOMAIN,
        control_failure=f.DNS_NON_PUBLIC_ANSWER,
    )


def test_a_private_answer_nobody_reaches_is_down_not_refused() -> None:
    """A name on 127.0.0.1 for everyone: the agent's connection is refused, the control had
    nothing to connect to. Not ``tcp.refused``: that would accuse the network."""
    agent = vantage("127.0.0.1", endpoints=(endpoint("127.0.0.1", tcp=f.CONNECTION_REFUSED),))
    assert_verdict(
        judge(agent, NO_PUBLIC),
        "down",
        failure=f.CONNECTION_REFUSED,
        control_failure=f.DNS_NON_PUBLIC_ANSWER,
    )


def test_a_public_answer_against_no_public_address_is_judged_locally() -> None:
    assert judge(vantage(), NO_PUBLIC) == Verdict("ok")


def test_a_bogon_beside_the_sites_own_address_hides_nothing() -> None:
    """The site publishes a private address too: the control drops it, the agent's
    resolver passes it on with the real one."""
    agent = vantage(SITE_IP, "10.0.0.5")
    assert judge(agent, vantage()) == Verdict("ok")
    assert judge(vantage("10.0.0.5"), vantage()).verdict == "dns.bogon"


def test_without_a_control_the_public_resolvers_are_the_reference() -> None:
    honest = (exchange(reply(SITE_IP)),)
    assert_verdict(judge(vantage("10.0.0.5", public=honest)), "dns.bogon", addresses="10.0.0.5")
    # Beside the real address a bogon hides nothing, as beside the control's.
    assert judge(vantage(SITE_IP, "10.0.0.5", public=honest)) == Verdict("ok")
    # The public resolvers pass the same private address on: it is the name's own.
    assert judge(vantage(SITE_IP, "10.0.0.5")) == Verdict("ok")

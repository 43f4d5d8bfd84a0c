"""The verdict over both address families (docs/design/002-verdicts.md, "IPv6"): each family
judged apart, a censor that blocks one and forgets the other named with ``family``."""

from __future__ import annotations

from dataclasses import replace

from agent.model import failures as f
from agent.model.measurement import Vantage, Verdict
from agent.model.observations import (
    DNSExchange,
    DNSReply,
    EndpointObservation,
    SystemResolution,
)
from agent.verdict import decide
from tests.agent.observations import (
    SITE_IP,
    endpoint,
    exchange,
    reply,
    system,
    target,
    vantage,
)
from tests.agent.verdict.cases import assert_verdict, judge

SITE6 = "2001:db8:4::c000:20a"


def aaaa(*addresses: str, failure: str | None = None, rcode: str | None = None) -> SystemResolution:
    return replace(system(*addresses, failure=failure, rcode=rcode), qtype="AAAA")


def exchange6(*replies: DNSReply) -> DNSExchange:
    return replace(exchange(*replies), qtype="AAAA")


def dual(
    *,
    four: EndpointObservation | None = None,
    six: EndpointObservation | None = None,
    system6: SystemResolution | None = None,
    public6: tuple[DNSExchange, ...] | None = None,
    a: tuple[str, ...] = (SITE_IP,),
) -> Vantage:
    """A dual-stack vantage: the site's A and AAAA answers, one working endpoint of each
    family unless given; ``None`` endpoints are working ones, and ``a=()`` drops IPv4."""
    system6 = system6 if system6 is not None else aaaa(SITE6)
    public6 = public6 if public6 is not None else (exchange6(reply(*system6.addresses)),)
    base = vantage(*a) if a else vantage(failure=f.DNS_NO_ANSWER, endpoints=())
    ends = [four or endpoint(SITE_IP)] if a else []
    if system6.addresses:
        ends.append(six or endpoint(SITE6))
    dns = replace(base.dns, system6=system6, public6=public6)
    return Vantage(dns=dns, endpoints=tuple(ends))


def blocked6() -> Vantage:
    return dual(six=endpoint(SITE6, tcp=f.GENERIC_TIMEOUT))


def test_both_families_open_is_ok_without_a_family() -> None:
    assert judge(dual(), dual()) == Verdict("ok")


def test_ipv6_blocked_and_ipv4_open_names_family_6() -> None:
    """The lab's hrw.org row: the censor drops the site's IPv6 address and forgets IPv4."""
    assert_verdict(judge(blocked6(), dual()), "tcp.timeout", family="6", ip=SITE6, trigger="ip")


def test_ipv4_blocked_and_ipv6_open_names_family_4() -> None:
    agent = dual(four=endpoint(SITE_IP, tcp=f.CONNECTION_REFUSED))
    assert_verdict(judge(agent, dual()), "tcp.refused", family="4", ip=SITE_IP)


def test_both_families_blocked_alike_names_no_family() -> None:
    agent = dual(
        four=endpoint(SITE_IP, tcp=f.GENERIC_TIMEOUT), six=endpoint(SITE6, tcp=f.GENERIC_TIMEOUT)
    )
    result = judge(agent, dual())
    assert_verdict(result, "tcp.timeout", ip=SITE_IP)
    assert "family" not in result.evidence


def test_aaaa_nxdomain_while_a_answers_is_a_dns_block_of_ipv6() -> None:
    agent = dual(system6=aaaa(failure=f.DNS_NXDOMAIN, rcode="NXDOMAIN"), public6=())
    assert_verdict(judge(agent, dual()), "dns.nxdomain", family="6", trigger="resolver")


def test_an_empty_aaaa_answer_is_no_block() -> None:
    """Resolvers drop AAAA for clients without IPv6 (filter-aaaa); the agent could not use
    the site's IPv6 address anyway, and IPv4 works."""
    agent = dual(system6=aaaa(failure=f.DNS_NO_ANSWER), public6=())
    assert judge(agent, dual()) == Verdict("ok")
    # Nor when the agent measured the control's IPv6 address and it failed.
    agent = replace(agent, endpoints=(*agent.endpoints, endpoint(SITE6, tcp=f.GENERIC_TIMEOUT)))
    assert judge(agent, dual()) == Verdict("ok")


def test_no_ipv6_route_leaves_the_verdict_to_ipv4() -> None:
    agent = replace(dual(), endpoints=(endpoint(SITE_IP),))
    assert judge(agent, dual()) == Verdict("ok")
    blocked = replace(agent, endpoints=(endpoint(SITE_IP, tcp=f.GENERIC_TIMEOUT),))
    result = judge(blocked, dual())
    assert_verdict(result, "tcp.timeout", ip=SITE_IP)
    assert "family" not in result.evidence


def test_an_ipv4_only_site_keeps_its_verdicts() -> None:
    none6 = aaaa(failure=f.DNS_NO_ANSWER)
    agent = dual(system6=none6, public6=(exchange6(reply()),))
    assert judge(agent, dual(system6=none6)) == Verdict("ok")
    blocked = replace(agent, endpoints=(endpoint(SITE_IP, tcp=f.CONNECTION_RESET),))
    result = judge(blocked, dual(system6=none6))
    assert_verdict(result, "tcp.reset", ip=SITE_IP, trigger="ip")
    assert "family" not in result.evidence


def test_an_ipv6_only_site_is_judged_by_ipv6() -> None:
    assert judge(dual(a=()), dual(a=())) == Verdict("ok")
    agent = dual(a=(), six=endpoint(SITE6, tcp=f.GENERIC_TIMEOUT))
    result = judge(agent, dual(a=()))
    assert_verdict(result, "tcp.timeout", ip=SITE6)
    assert "family" not in result.evidence


def test_ipv4_down_for_everyone_and_ipv6_working_is_ok() -> None:
    refused = endpoint(SITE_IP, tcp=f.CONNECTION_REFUSED)
    assert judge(dual(four=refused), dual(four=refused)) == Verdict("ok")


def test_injected_aaaa_replies_are_dns_injection_of_ipv6() -> None:
    forged = reply("2001:db8:4::cb00:7142", ip_ttl=64)
    agent = dual(public6=(exchange6(forged, reply(SITE6)),))
    assert_verdict(judge(agent, dual()), "dns.injected", family="6")


def test_without_a_control_an_ipv6_failure_is_inconclusive_for_family_6() -> None:
    assert_verdict(judge(blocked6()), "inconclusive", family="6", failure=f.GENERIC_TIMEOUT)


def test_a_control_that_did_not_ask_aaaa_says_nothing_about_ipv6() -> None:
    old_control = vantage()
    assert_verdict(judge(blocked6(), old_control), "inconclusive", family="6")
    assert judge(dual(), old_control) == Verdict("ok")


def test_records_without_aaaa_are_judged_as_before() -> None:
    """A record from before IPv6 was measured: no system6, whatever its endpoints."""
    agent = vantage(endpoints=(endpoint(SITE_IP), endpoint(SITE6, tcp=f.GENERIC_TIMEOUT)))
    assert agent.dns.system6 is None
    assert decide(target(), agent, vantage()) == Verdict("ok")

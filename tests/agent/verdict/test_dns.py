"""The verdict's DNS rules (docs/design/002-verdicts.md): injected replies, resolver failures,
and answers that are not the site's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.model import failures as f
from agent.model.measurement import Vantage, Verdict
from agent.model.observations import DNSExchange
from agent.verdict import decide
from tests.agent.observations import (
    BENIGN,
    BLOCKPAGE_FP,
    SITE_IP,
    cut,
    endpoint,
    exchange,
    handshake,
    page,
    reply,
    target,
    vantage,
)
from tests.agent.verdict.cases import BLOCKPAGE_IP, OTHER_IP, assert_verdict, judge

# DNS: injection


def injected_public(
    real_ttl: int | None = 62, forged_ttl: int | None = 58
) -> tuple[DNSExchange, ...]:
    return (exchange(reply("203.0.113.66", ip_ttl=forged_ttl), reply(SITE_IP, ip_ttl=real_ttl)),)


def test_injected_reply_with_control() -> None:
    agent = vantage(public=injected_public())
    assert_verdict(
        judge(agent, vantage()),
        "dns.injected",
        injected_answers="203.0.113.66",
        ttl_diff=-4,
        ip="198.51.100.8",
    )


def test_injected_reply_without_control_takes_the_last_reply_as_real() -> None:
    agent = vantage(public=injected_public(real_ttl=None))
    result = judge(agent)
    assert_verdict(result, "dns.injected", injected_answers="203.0.113.66")
    assert "ttl_diff" not in result.evidence


def test_control_picks_the_real_reply_even_when_it_came_first() -> None:
    public = (exchange(reply(SITE_IP, ip_ttl=62), reply("203.0.113.66", ip_ttl=58)),)
    assert_verdict(
        judge(vantage(public=public), vantage()),
        "dns.injected",
        injected_answers="203.0.113.66",
        ttl_diff=-4,
    )


def test_forged_nxdomain_is_injection_too() -> None:
    public = (exchange(reply(rcode="NXDOMAIN", ip_ttl=58), reply(SITE_IP)),)
    assert_verdict(
        judge(vantage(public=public), vantage()), "dns.injected", reason="forged NXDOMAIN"
    )


def test_forged_answer_the_control_also_gets_is_not_listed() -> None:
    public = (exchange(reply(OTHER_IP), reply(SITE_IP)),)
    result = judge(vantage(public=public), vantage(SITE_IP, OTHER_IP))
    assert_verdict(result, "dns.injected", reason="forged NOERROR")


def test_duplicate_replies_are_not_injection() -> None:
    public = (exchange(reply(SITE_IP), reply(SITE_IP)),)
    assert judge(vantage(public=public), vantage()) == Verdict("ok")


def test_injection_beats_a_resolver_failure() -> None:
    agent = vantage(failure=f.DNS_NXDOMAIN, public=injected_public(), endpoints=())
    assert judge(agent, vantage()).verdict == "dns.injected"


# DNS: resolver failures


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (f.DNS_NXDOMAIN, "dns.nxdomain"),
        (f.DNS_NO_ANSWER, "dns.nxdomain"),
        (f.DNS_SERVFAIL, "dns.servfail"),
        (f.DNS_REFUSED, "dns.refused"),
        (f.GENERIC_TIMEOUT, "dns.timeout"),
    ],
)
def test_resolver_failure_while_control_resolves(failure: str, expected: str) -> None:
    agent = vantage(failure=failure, endpoints=())
    assert_verdict(judge(agent, vantage()), expected, trigger="resolver", failure=failure)


def test_noerror_without_addresses_counts_as_no_answer() -> None:
    agent = Vantage(
        dns=replace(vantage().dns, system=replace(vantage().dns.system, addresses=())), endpoints=()
    )
    assert_verdict(judge(agent, vantage()), "dns.nxdomain", failure=f.DNS_NO_ANSWER)


def test_unclassified_resolver_failure_is_inconclusive() -> None:
    failure = f.unknown("dns rcode NOTIMP")
    agent = vantage(failure=failure, endpoints=())
    assert_verdict(judge(agent, vantage()), "inconclusive", failure=failure)


def test_resolver_failure_the_control_shares_is_down() -> None:
    agent = vantage(failure=f.DNS_NXDOMAIN, endpoints=())
    control = vantage(failure=f.DNS_NXDOMAIN, endpoints=())
    assert_verdict(judge(agent, control), "down", control_failure=f.DNS_NXDOMAIN)


def test_resolver_failure_the_control_has_differently_is_down_too() -> None:
    """Whatever each failure is called, the name resolves for no one."""
    agent = vantage(failure=f.GENERIC_TIMEOUT, endpoints=())
    for theirs in (f.DNS_NXDOMAIN, f.DNS_NO_ANSWER, f.DNS_SERVFAIL):
        control = vantage(failure=theirs, endpoints=())
        assert_verdict(
            judge(agent, control), "down", failure=f.GENERIC_TIMEOUT, control_failure=theirs
        )


def test_resolver_failure_without_control_uses_public_resolvers() -> None:
    agent = vantage(failure=f.DNS_NXDOMAIN, public=(exchange(reply(SITE_IP)),), endpoints=())
    assert_verdict(judge(agent), "dns.nxdomain", trigger="resolver")
    unclassified = replace(
        agent,
        dns=replace(agent.dns, system=replace(agent.dns.system, failure=f.CONNECTION_REFUSED)),
    )
    assert judge(unclassified).verdict == "inconclusive"


def test_resolver_failure_without_control_or_public_answer_is_inconclusive() -> None:
    for public in ((), (exchange(),), (exchange(reply(rcode="NXDOMAIN")),)):
        agent = vantage(failure=f.DNS_NXDOMAIN, public=public, endpoints=())
        assert_verdict(judge(agent), "inconclusive", failure=f.DNS_NXDOMAIN)


# DNS: answers


@pytest.mark.parametrize(
    "bogon",
    [
        "10.10.34.34",
        "127.0.0.1",
        "0.0.0.0",
        "169.254.1.1",
        "172.20.0.1",
        "192.168.1.1",
        "100.64.0.9",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
    ],
)
def test_bogon_answer(bogon: str) -> None:
    agent = vantage(bogon)
    assert_verdict(judge(agent, vantage()), "dns.bogon", trigger="resolver", addresses=bogon)
    # No control: an honest public resolver is the outside view, and no resolver is none.
    for public in ((exchange(reply(SITE_IP)),), ()):
        assert judge(vantage(bogon, public=public)).verdict == "dns.bogon"


def test_bogon_every_resolver_answers_is_the_names_own_without_control() -> None:
    """A site parked on 127.0.0.1: the public resolvers say so too. The endpoints decide,
    and a refused connection with nothing to compare with decides nothing."""
    refused = endpoint("127.0.0.1", tcp=f.CONNECTION_REFUSED)
    agent = vantage("127.0.0.1", endpoints=(refused,))
    assert_verdict(judge(agent), "inconclusive", failure=f.CONNECTION_REFUSED)
    # A fingerprint of a private address cannot tell a censor's sinkhole from a parked name.
    sinkhole = vantage("10.10.34.34", endpoints=(endpoint("10.10.34.34", tcp=f.GENERIC_TIMEOUT),))
    assert_verdict(judge(sinkhole, fingerprints=True), "inconclusive", failure=f.GENERIC_TIMEOUT)


def test_private_fingerprint_the_control_cannot_see_past_is_no_evidence() -> None:
    """OONI fingerprints 127.0.0.1 (a convention of some censors). A name on 127.0.0.1 for
    the control too is down, not a DNS mismatch."""
    refused = endpoint("10.10.34.34", tcp=f.CONNECTION_REFUSED)
    agent = vantage("10.10.34.34", endpoints=(refused,))
    no_public = vantage(failure=f.DNS_NON_PUBLIC_ANSWER, endpoints=())
    assert_verdict(
        judge(agent, no_public, fingerprints=True),
        "down",
        control_failure=f.DNS_NON_PUBLIC_ANSWER,
    )


def test_ip_literal_target_asked_no_resolver() -> None:
    """https://127.0.0.1/ is not a resolver's bogon: no resolver was asked."""
    literal = Vantage(
        dns=replace(
            vantage().dns,
            system=replace(
                vantage().dns.system, name="127.0.0.1", addresses=("127.0.0.1",), server=None
            ),
            public=(),
        ),
        endpoints=(endpoint("127.0.0.1", tcp=f.CONNECTION_REFUSED),),
    )
    result = decide(target("https://127.0.0.1/"), literal, None)
    assert_verdict(result, "inconclusive", failure=f.CONNECTION_REFUSED)
    assert "trigger" not in result.evidence


@pytest.mark.parametrize("public", ["192.0.2.1", "198.51.100.7", "203.0.113.5", "2001:db8::1"])
def test_test_net_ranges_are_public(public: str) -> None:
    assert judge(vantage(public)) == Verdict("ok")


def test_bogon_the_control_also_gets_is_not_tampering() -> None:
    assert judge(vantage("127.0.0.1"), vantage("127.0.0.1")) == Verdict("ok")


def test_bogon_that_matches_a_fingerprint_names_it() -> None:
    result = judge(vantage("10.10.34.34"), vantage(), fingerprints=True)
    assert_verdict(result, "dns.bogon", fingerprint="dns.sinkhole_bogon")


def test_unparseable_address_is_not_a_bogon() -> None:
    agent = vantage("not-an-ip", endpoints=())
    assert_verdict(judge(agent, vantage("not-an-ip")), "inconclusive", reason="no endpoints")


def test_dns_fingerprint_is_mismatch() -> None:
    agent = vantage("203.0.113.99")
    result = judge(agent, vantage(), fingerprints=True)
    assert_verdict(result, "dns.mismatch", fingerprint="dns.sinkhole", trigger="resolver")
    assert judge(agent, None, fingerprints=True).verdict == "dns.mismatch"


def test_dns_fingerprint_the_control_also_gets_is_ignored() -> None:
    both = vantage("203.0.113.99")
    assert judge(both, both, fingerprints=True) == Verdict("ok")


def test_false_positive_dns_fingerprint_is_ignored() -> None:
    agent = vantage("203.0.113.77")
    control = vantage("203.0.113.77")
    assert judge(agent, control, fingerprints=True) == Verdict("ok")


def test_cdn_variation_is_ok() -> None:
    agent = vantage(OTHER_IP, endpoints=(endpoint(OTHER_IP), endpoint(SITE_IP)))
    assert judge(agent, vantage()) == Verdict("ok")
    assert judge(agent, vantage(endpoints=(endpoint(SITE_IP),))) == Verdict("ok")
    http_agent = vantage(OTHER_IP, scheme="http")
    assert judge(http_agent, vantage(scheme="http"), http=True) == Verdict("ok")


def test_redirect_to_blockpage_server_by_fingerprint() -> None:
    """The lab's rabwah.net row: the ISP resolver answers its blockpage server."""
    blockpage = page(title="Blocked", body_length=400, fingerprint=BLOCKPAGE_FP)
    agent = vantage(
        BLOCKPAGE_IP,
        scheme="http",
        endpoints=(endpoint(BLOCKPAGE_IP, "http", http=blockpage), endpoint(SITE_IP, "http")),
        public=(exchange(reply(SITE_IP)),),  # the public resolver is honest
    )
    control = vantage(
        SITE_IP,
        scheme="http",
        endpoints=(endpoint(SITE_IP, "http"), endpoint(BLOCKPAGE_IP, "http", http=blockpage)),
    )
    for ctl in (control, None):
        assert_verdict(
            judge(agent, ctl, http=True, fingerprints=True),
            "dns.mismatch",
            trigger="resolver",
            fingerprint=BLOCKPAGE_FP,
            ip=BLOCKPAGE_IP,
        )


def test_redirect_to_blockpage_server_without_fingerprints() -> None:
    blockpage = page(title="Blocked", body_length=400)
    agent = vantage(
        BLOCKPAGE_IP, scheme="http", endpoints=(endpoint(BLOCKPAGE_IP, "http", http=blockpage),)
    )
    result = judge(agent, vantage(scheme="http"), http=True)
    assert_verdict(result, "dns.mismatch", reason="http", addresses=BLOCKPAGE_IP)


def test_redirect_to_a_server_without_the_sites_certificate() -> None:
    wrong = handshake(validation_failure=f.SSL_UNKNOWN_AUTHORITY, issuer="ISP")
    agent = vantage(
        BLOCKPAGE_IP,
        endpoints=(endpoint(BLOCKPAGE_IP, tls=wrong),),
        public=(exchange(reply(SITE_IP)),),
    )
    assert_verdict(
        judge(agent, vantage()),
        "dns.mismatch",
        reason="certificate",
        failure=f.SSL_UNKNOWN_AUTHORITY,
    )
    # Without a control the public resolvers' answer is the reference.
    assert_verdict(judge(agent), "dns.mismatch", reason="certificate")


def test_redirect_where_the_handshake_fails() -> None:
    failed = handshake(failure=f.CONNECTION_REFUSED)
    benign = handshake(BENIGN, failure=f.CONNECTION_REFUSED)
    agent = vantage(
        BLOCKPAGE_IP, endpoints=(endpoint(BLOCKPAGE_IP, tls=failed, tls_benign=benign, http=None),)
    )
    assert_verdict(
        judge(agent, vantage()), "dns.mismatch", reason="tls", failure=f.CONNECTION_REFUSED
    )


def test_sni_filtering_at_another_address_is_not_mismatch() -> None:
    failed = handshake(failure=f.CONNECTION_RESET)
    agent = vantage(
        OTHER_IP,
        endpoints=(endpoint(OTHER_IP, tls=failed, tls_benign=handshake(BENIGN), http=None),),
    )
    control = vantage(endpoints=(endpoint(SITE_IP), endpoint(OTHER_IP)))
    assert_verdict(judge(agent, control), "tls.reset", trigger="sni", ip=OTHER_IP)


def test_redirect_to_a_dead_address() -> None:
    agent = vantage(
        BLOCKPAGE_IP, endpoints=(endpoint(BLOCKPAGE_IP, tcp=f.GENERIC_TIMEOUT), endpoint(SITE_IP))
    )
    assert_verdict(judge(agent, vantage()), "dns.mismatch", reason="tcp", failure=f.GENERIC_TIMEOUT)
    # Only the control reached the real site: still the resolver's doing.
    agent_only = replace(agent, endpoints=agent.endpoints[:1])
    assert judge(agent_only, vantage()).verdict == "dns.mismatch"


def test_different_address_that_nobody_reaches_goes_on_to_tcp() -> None:
    dead = endpoint(BLOCKPAGE_IP, tcp=f.GENERIC_TIMEOUT)
    agent = vantage(BLOCKPAGE_IP, endpoints=(dead,))
    control = vantage(
        endpoints=(
            endpoint(SITE_IP, tcp=f.GENERIC_TIMEOUT),
            endpoint(BLOCKPAGE_IP, tcp=f.GENERIC_TIMEOUT),
        )
    )
    assert_verdict(judge(agent, control), "down", failure=f.GENERIC_TIMEOUT)


def test_different_address_with_no_evidence_goes_on() -> None:
    # An http page with nothing to compare it with, and a cut request: no evidence either way.
    agent = vantage(
        OTHER_IP,
        scheme="http",
        endpoints=(endpoint(OTHER_IP, "http"), endpoint("192.0.2.98", "http", http=cut())),
        public=(exchange(reply(SITE_IP)),),
    )
    control = vantage(scheme="http", endpoints=(endpoint(SITE_IP, "http", http=cut()),))
    assert judge(agent, control, http=True) == Verdict("ok")
    # With no control the cut request is a failure nothing explains: never ok.
    assert_verdict(
        judge(agent, None, http=True), "inconclusive", ip="192.0.2.98", reason="no control"
    )

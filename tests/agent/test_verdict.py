"""The verdict rules (docs/design/002-verdicts.md) on recorded-looking observations."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model import failures as f
from agent.model.measurement import Vantage, Verdict
from agent.model.observations import DNSExchange, EndpointObservation
from agent.verdict import VERDICTS, decide
from tests.agent.observations import (
    BENIGN,
    BLOCKPAGE_FP,
    SITE_IP,
    cut,
    endpoint,
    exchange,
    fingerprint_set,
    handshake,
    page,
    reply,
    target,
    vantage,
)
from tests.lab.scenarios import Scenario, load

HTTPS = target("https://wikipedia.org/")
HTTP = target("http://wikipedia.org/")
OTHER_IP = "192.0.2.99"
BLOCKPAGE_IP = "203.0.113.80"
FPS = fingerprint_set()


def judge(
    agent: Vantage,
    control: Vantage | None = None,
    *,
    http: bool = False,
    online: bool | None = None,
    fingerprints: bool = False,
) -> Verdict:
    return decide(
        HTTP if http else HTTPS,
        agent,
        control,
        online=online,
        fingerprints=FPS if fingerprints else None,
    )


def assert_verdict(result: Verdict, expected: str, **evidence: object) -> None:
    assert result.verdict == expected, result
    for key, value in evidence.items():
        assert result.evidence.get(key) == value, (key, result)


# Overall


def test_clean_site_is_ok() -> None:
    assert judge(vantage(), vantage()) == Verdict("ok")
    assert judge(vantage(scheme="http"), vantage(scheme="http"), http=True) == Verdict("ok")


def test_offline_beats_everything() -> None:
    agent = vantage(failure=f.GENERIC_TIMEOUT, endpoints=())
    assert judge(agent, None, online=False) == Verdict("offline")
    assert judge(vantage(), vantage(), online=False) == Verdict("offline")
    assert judge(vantage(), vantage(), online=True) == Verdict("ok")


def test_no_control_and_everything_works_is_ok() -> None:
    assert judge(vantage()) == Verdict("ok")


def test_no_endpoints_is_inconclusive() -> None:
    assert_verdict(judge(vantage(endpoints=()), vantage()), "inconclusive", reason="no endpoints")


def test_empty_views_never_raise() -> None:
    empty = Vantage(dns=vantage(failure=f.GENERIC_TIMEOUT, public=()).dns, endpoints=())
    for control in (None, empty, vantage(endpoints=())):
        assert judge(empty, control).verdict in VERDICTS
    odd = replace(endpoint(), tls=None, http=None)
    assert judge(vantage(endpoints=(odd,)), vantage()) == Verdict("ok")
    assert judge(vantage(endpoints=(odd,)), vantage(endpoints=(odd,))) == Verdict("ok")


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


def test_resolver_failure_the_control_has_differently_is_inconclusive() -> None:
    agent = vantage(failure=f.GENERIC_TIMEOUT, endpoints=())
    control = vantage(failure=f.DNS_NXDOMAIN, endpoints=())
    assert_verdict(judge(agent, control), "inconclusive", control_failure=f.DNS_NXDOMAIN)


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
    assert judge(agent).verdict == "dns.bogon"


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
    assert judge(agent, None, http=True) == Verdict("ok")


# TCP


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


def test_tcp_failing_differently_from_control_is_inconclusive() -> None:
    agent = vantage(endpoints=(endpoint(tcp=f.GENERIC_TIMEOUT),))
    control = vantage(endpoints=(endpoint(tcp=f.CONNECTION_REFUSED),))
    assert_verdict(judge(agent, control), "inconclusive", reason="the control failed differently")


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


# TLS


def sni_blocked(failure: str, benign_failure: str | None = None) -> Vantage:
    tls = handshake(failure=failure)
    benign = handshake(BENIGN, failure=benign_failure)
    return vantage(endpoints=(endpoint(tls=tls, tls_benign=benign, http=None),))


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (f.CONNECTION_RESET, "tls.reset"),
        (f.CONNECTION_ABORTED, "tls.reset"),
        (f.SSL_FAILED_HANDSHAKE, "tls.reset"),
        (f.GENERIC_TIMEOUT, "tls.timeout"),
        (f.EOF, "tls.eof"),
    ],
)
def test_tls_cut_with_sni_trigger(failure: str, expected: str) -> None:
    assert_verdict(judge(sni_blocked(failure), vantage()), expected, trigger="sni", failure=failure)
    # The SNI swap is local evidence: no control needed.
    assert_verdict(judge(sni_blocked(failure)), expected, trigger="sni")


def test_tls_cut_for_any_name_is_ip_triggered() -> None:
    agent = sni_blocked(f.CONNECTION_RESET, benign_failure=f.CONNECTION_RESET)
    assert_verdict(judge(agent, vantage()), "tls.reset", trigger="ip")
    assert_verdict(judge(agent), "inconclusive", failure=f.CONNECTION_RESET)


def test_tls_cut_without_swap_is_ip_triggered() -> None:
    agent = vantage(endpoints=(endpoint(tls=handshake(failure=f.EOF), http=None),))
    assert_verdict(judge(agent, vantage()), "tls.eof", trigger="ip")
    assert judge(agent).verdict == "inconclusive"


def test_unclassified_tls_failure_is_inconclusive() -> None:
    agent = sni_blocked(f.unknown("weird"))
    assert_verdict(judge(agent, vantage()), "inconclusive", reason="unclassified failure")


def test_tls_down_for_everyone() -> None:
    control = vantage(endpoints=(endpoint(tls=handshake(failure=f.EOF), http=None),))
    agent = sni_blocked(f.EOF, benign_failure=f.EOF)
    assert_verdict(judge(agent, control), "down", failure=f.EOF)


def test_tls_cut_where_control_could_not_connect() -> None:
    control = vantage(endpoints=(endpoint(tcp=f.GENERIC_TIMEOUT),))
    agent = sni_blocked(f.CONNECTION_RESET)
    assert_verdict(judge(agent, control), "inconclusive", control_failure=f.GENERIC_TIMEOUT)


def test_some_handshakes_completing_is_enough() -> None:
    agent = vantage(
        SITE_IP,
        OTHER_IP,
        endpoints=(
            endpoint(SITE_IP, tls=handshake(failure=f.CONNECTION_RESET), http=None),
            endpoint(OTHER_IP),
        ),
    )
    assert judge(agent, vantage(SITE_IP, OTHER_IP)) == Verdict("ok")


def test_interception_with_untrusted_certificate() -> None:
    """The lab's gandhara.rferl.org row."""
    fake = handshake(
        validation_failure=f.SSL_UNKNOWN_AUTHORITY, issuer="Interceptor", leaf="cc" * 32
    )
    agent = vantage(endpoints=(endpoint(tls=fake),))
    assert_verdict(
        judge(agent, vantage()), "tls.mitm", issuer="Interceptor", reason=f.SSL_UNKNOWN_AUTHORITY
    )
    assert_verdict(judge(agent), "tls.mitm", reason=f.SSL_UNKNOWN_AUTHORITY)


def test_interception_with_a_trusted_but_foreign_issuer() -> None:
    state = handshake(issuer="State Root CA", leaf="dd" * 32)
    agent = vantage(endpoints=(endpoint(tls=state),))
    assert_verdict(judge(agent, vantage()), "tls.mitm", issuer="State Root CA")
    # A rotated leaf from the same issuer is the site's business.
    rotated = vantage(endpoints=(endpoint(tls=handshake(leaf="ee" * 32)),))
    assert judge(rotated, vantage()) == Verdict("ok")


def test_invalid_certificate_the_control_sees_too_is_not_interception() -> None:
    bad = handshake(validation_failure=f.SSL_INVALID_CERTIFICATE)
    both = vantage(endpoints=(endpoint(tls=bad),))
    assert judge(both, both) == Verdict("ok")
    failed_control = vantage(endpoints=(endpoint(tls=handshake(failure=f.EOF), http=None),))
    assert judge(both, failed_control) == Verdict("ok")


def test_control_certificate_is_taken_from_another_endpoint_when_needed() -> None:
    fake = handshake(validation_failure=f.SSL_INVALID_HOSTNAME, issuer=None)
    agent = vantage(endpoints=(endpoint(tls=fake),))
    control = vantage(endpoints=(endpoint(OTHER_IP), endpoint(SITE_IP, tls=None)))
    result = judge(agent, control)
    assert_verdict(result, "tls.mitm", reason=f.SSL_INVALID_HOSTNAME)
    assert "issuer" not in result.evidence
    no_tls = vantage(endpoints=(endpoint(SITE_IP, tls=None),))
    assert judge(agent, no_tls) == Verdict("ok")


def test_invalid_certificate_without_control_is_inconclusive_unless_untrusted() -> None:
    expired = handshake(validation_failure=f.SSL_INVALID_CERTIFICATE)
    result = judge(vantage(endpoints=(endpoint(tls=expired),)))
    assert_verdict(result, "inconclusive", failure=f.SSL_INVALID_CERTIFICATE, reason="no control")
    unstated = replace(handshake(), validated=False)
    assert_verdict(
        judge(vantage(endpoints=(endpoint(tls=unstated),))),
        "inconclusive",
        failure=f.SSL_INVALID_CERTIFICATE,
    )


# HTTP


def host_blocked(failure: str, benign: object = "ok", scheme: str = "http") -> Vantage:
    swap = page(host=BENIGN) if benign == "ok" else (cut(failure) if benign else None)
    return vantage(
        scheme=scheme, endpoints=(endpoint(scheme=scheme, http=cut(failure), http_benign=swap),)
    )


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (f.CONNECTION_RESET, "http.reset"),
        (f.CONNECTION_ABORTED, "http.reset"),
        (f.GENERIC_TIMEOUT, "http.timeout"),
        (f.EOF, "http.eof"),
    ],
)
def test_http_cut_with_host_trigger(failure: str, expected: str) -> None:
    control = vantage(scheme="http")
    assert_verdict(
        judge(host_blocked(failure), control, http=True), expected, trigger="host", failure=failure
    )
    assert_verdict(judge(host_blocked(failure), None, http=True), expected, trigger="host")


def test_http_cut_for_any_host_is_ip_triggered() -> None:
    agent = host_blocked(f.CONNECTION_RESET, benign="cut")
    assert_verdict(judge(agent, vantage(scheme="http"), http=True), "http.reset", trigger="ip")
    assert_verdict(judge(agent, None, http=True), "inconclusive", failure=f.CONNECTION_RESET)


def test_https_request_cut_has_no_trigger() -> None:
    agent = host_blocked(f.CONNECTION_RESET, benign=None, scheme="https")
    result = judge(agent, vantage())
    assert_verdict(result, "http.reset", failure=f.CONNECTION_RESET)
    assert "trigger" not in result.evidence


def test_unclassified_http_failure_is_inconclusive() -> None:
    agent = host_blocked(f.unknown("malformed http status line"))
    assert_verdict(
        judge(agent, vantage(scheme="http"), http=True),
        "inconclusive",
        reason="unclassified failure",
    )
    silent = vantage(endpoints=(endpoint(http=page(None)),))
    assert_verdict(judge(silent, vantage()), "inconclusive", failure="")


def test_http_down_for_everyone() -> None:
    control = vantage(scheme="http", endpoints=(endpoint(scheme="http", http=cut(f.EOF)),))
    agent = host_blocked(f.EOF, benign="cut")
    assert_verdict(judge(agent, control, http=True), "down", failure=f.EOF)
    other = vantage(scheme="http", endpoints=(endpoint(scheme="http", http=cut()),))
    assert_verdict(
        judge(agent, other, http=True), "inconclusive", control_failure=f.CONNECTION_RESET
    )


def test_blockpage_fingerprint() -> None:
    """The lab's ahmadiyya.org row: a transparent proxy serves the PTA blockpage."""
    blockpage = page(title="Blocked", body_length=400, fingerprint=BLOCKPAGE_FP)
    agent = vantage(scheme="http", endpoints=(endpoint(scheme="http", http=blockpage),))
    result = judge(agent, vantage(scheme="http"), http=True)
    assert_verdict(result, "http.blockpage", fingerprint=BLOCKPAGE_FP, ip=SITE_IP)
    assert "trigger" not in result.evidence
    assert judge(agent, None, http=True).verdict == "http.blockpage"


def test_blockpage_with_host_swap_names_the_trigger() -> None:
    blockpage = page(fingerprint=BLOCKPAGE_FP)
    for swap, trigger in ((page(host=BENIGN), "host"), (page(fingerprint=BLOCKPAGE_FP), "ip")):
        agent = vantage(endpoints=(endpoint(http=blockpage, http_benign=swap),))
        assert_verdict(judge(agent, vantage()), "http.blockpage", trigger=trigger)


def test_response_unlike_the_control_in_every_way_is_a_blockpage() -> None:
    other = page(403, title="Access denied", body_length=300)
    agent = vantage(endpoints=(endpoint(http=other),))
    assert_verdict(judge(agent, vantage()), "http.blockpage", reason="differs from control")


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (page(403, body_length=300), "status differs from control"),
        (page(title="Something else", body_length=300), "title differs from control"),
        (page(403, title="Access denied"), "status differs from control"),
    ],
)
def test_response_partly_unlike_the_control_is_a_diff(response: object, reason: str) -> None:
    agent = vantage(endpoints=(endpoint(http=response),))
    assert_verdict(judge(agent, vantage()), "http.diff", reason=reason)


def test_same_response_with_other_length_is_ok() -> None:
    agent = vantage(endpoints=(endpoint(http=page(body_length=10)),))
    assert judge(agent, vantage()) == Verdict("ok")
    empty = page(204, title=None, body_length=0)
    assert judge(
        vantage(endpoints=(endpoint(http=empty),)), vantage(endpoints=(endpoint(http=empty),))
    ) == Verdict("ok")


def test_blockpage_at_one_endpoint_beats_a_diff_at_another() -> None:
    agent = vantage(
        SITE_IP,
        OTHER_IP,
        endpoints=(
            endpoint(SITE_IP, http=page(title="Other")),
            endpoint(OTHER_IP, http=page(403, title="Denied", body_length=1)),
        ),
    )
    assert_verdict(judge(agent, vantage(SITE_IP, OTHER_IP)), "http.blockpage", ip=OTHER_IP)
    two_diffs = vantage(
        SITE_IP,
        OTHER_IP,
        endpoints=(endpoint(SITE_IP, http=page(title="Other")), endpoint(OTHER_IP, http=page(500))),
    )
    assert_verdict(judge(two_diffs, vantage(SITE_IP, OTHER_IP)), "http.diff", ip=SITE_IP)


def test_some_requests_answered_is_enough() -> None:
    agent = vantage(
        SITE_IP, OTHER_IP, endpoints=(endpoint(SITE_IP, http=cut()), endpoint(OTHER_IP))
    )
    assert judge(agent, vantage(SITE_IP, OTHER_IP)) == Verdict("ok")


def test_control_page_is_taken_from_another_endpoint_when_needed() -> None:
    agent = vantage(endpoints=(endpoint(http=page(500)),))
    control = vantage(endpoints=(endpoint(SITE_IP, http=cut()), endpoint(OTHER_IP)))
    assert_verdict(judge(agent, control), "http.diff")
    no_page = vantage(endpoints=(endpoint(SITE_IP, http=cut()),))
    assert judge(agent, no_page) == Verdict("ok")


# The lab's scenario table: every row's verdict on observations shaped like the lab's.


def lab_views(row: Scenario) -> tuple[Vantage, Vantage | None, bool | None]:
    s = row.scheme
    ip = row.ip
    control = vantage(ip, scheme=s)
    technique = row.technique
    if technique == "dns-nxdomain":
        return vantage(failure=f.DNS_NXDOMAIN, endpoints=(), scheme=s), control, None
    if technique == "dns-bogon":
        return vantage(row.params.get("answer", "10.10.34.34"), scheme=s), control, None
    if technique == "dns-redirect":
        blockpage = page(title="Blocked", body_length=400, fingerprint=BLOCKPAGE_FP)
        return (
            vantage(
                BLOCKPAGE_IP,
                scheme=s,
                endpoints=(endpoint(BLOCKPAGE_IP, s, http=blockpage), endpoint(ip, s)),
            ),
            control,
            None,
        )
    if technique == "dns-inject":
        public = (exchange(reply(row.params["answer"], ip_ttl=61), reply(ip, ip_ttl=59)),)
        return vantage(ip, scheme=s, public=public), control, None
    if technique in ("ip-drop", "ip-reset"):
        failure = f.GENERIC_TIMEOUT if technique == "ip-drop" else f.CONNECTION_REFUSED
        return vantage(ip, scheme=s, endpoints=(endpoint(ip, s, tcp=failure),)), control, None
    if technique in ("sni-reset", "sni-drop"):
        failure = f.CONNECTION_RESET if technique == "sni-reset" else f.GENERIC_TIMEOUT
        end = endpoint(
            ip, s, tls=handshake(failure=failure), tls_benign=handshake(BENIGN), http=None
        )
        return vantage(ip, scheme=s, endpoints=(end,)), control, None
    if technique in ("host-reset", "host-drop"):
        failure = f.CONNECTION_RESET if technique == "host-reset" else f.GENERIC_TIMEOUT
        end = endpoint(ip, s, http=cut(failure), http_benign=page(host=BENIGN))
        return vantage(ip, scheme=s, endpoints=(end,)), control, None
    if technique == "http-blockpage":
        blockpage = page(title="Blocked", body_length=400, fingerprint=BLOCKPAGE_FP)
        return vantage(ip, scheme=s, endpoints=(endpoint(ip, s, http=blockpage),)), control, None
    if technique == "tls-intercept":
        fake = handshake(validation_failure=f.SSL_UNKNOWN_AUTHORITY, issuer="interceptor")
        return vantage(ip, scheme=s, endpoints=(endpoint(ip, s, tls=fake),)), control, None
    if technique == "down":
        refused = (endpoint(ip, s, tcp=f.CONNECTION_REFUSED),)
        return (
            vantage(ip, scheme=s, endpoints=refused),
            vantage(ip, scheme=s, endpoints=refused),
            None,
        )
    if technique == "shutdown":
        return vantage(failure=f.GENERIC_TIMEOUT, endpoints=(), public=()), None, False
    return vantage(ip, scheme=s), control, None  # clean, and throttle (a later issue)


LAB = [r for r in load().rows if r.expected != "throttled"]


@pytest.mark.parametrize("row", LAB, ids=[r.domain for r in LAB])
def test_lab_row_verdicts(row: Scenario) -> None:
    agent, control, online = lab_views(row)
    result = decide(target(row.url), agent, control, online=online, fingerprints=FPS)
    assert result.verdict == row.expected, result
    if row.trigger is not None and row.technique != "http-blockpage":
        assert result.evidence.get("trigger") == row.trigger, result


# Totality


FAILURES = st.sampled_from(
    [
        None,
        f.CONNECTION_REFUSED,
        f.CONNECTION_RESET,
        f.CONNECTION_ABORTED,
        f.GENERIC_TIMEOUT,
        f.EOF,
        f.HOST_UNREACHABLE,
        f.NETWORK_UNREACHABLE,
        f.DNS_NXDOMAIN,
        f.DNS_SERVFAIL,
        f.DNS_REFUSED,
        f.DNS_NO_ANSWER,
        f.SSL_UNKNOWN_AUTHORITY,
        f.SSL_INVALID_HOSTNAME,
        f.SSL_INVALID_CERTIFICATE,
        f.SSL_FAILED_HANDSHAKE,
        f.unknown("x"),
    ]
)
IPS = st.sampled_from([SITE_IP, OTHER_IP, BLOCKPAGE_IP, "10.0.0.1", "::1", "bogus"])


@st.composite
def endpoints(draw: st.DrawFn) -> EndpointObservation:
    scheme = draw(st.sampled_from(["https", "http"]))
    tls = handshake(
        failure=draw(FAILURES),
        validation_failure=draw(FAILURES),
        issuer=draw(st.sampled_from([None, "A", "B"])),
        leaf=draw(st.sampled_from(["aa", "bb"])),
    )
    response = page(
        draw(st.sampled_from([None, 200, 403])),
        failure=draw(FAILURES),
        fingerprint=draw(st.sampled_from([None, BLOCKPAGE_FP])),
        title=draw(st.sampled_from([None, "A", "B"])),
        body_length=draw(st.integers(0, 10_000)),
    )
    return endpoint(
        draw(IPS),
        scheme,
        tcp=draw(FAILURES) or endpoint().tcp,
        tls=draw(st.sampled_from([None, tls])),
        http=draw(st.sampled_from([None, response])),
        tls_benign=draw(st.sampled_from([None, handshake(BENIGN, failure=draw(FAILURES))])),
        http_benign=draw(st.sampled_from([None, page(draw(st.sampled_from([None, 200])))])),
    )


@st.composite
def views(draw: st.DrawFn) -> Vantage:
    addresses = draw(st.lists(IPS, max_size=3, unique=True))
    replies = draw(
        st.lists(
            st.builds(
                reply,
                *([IPS] * 1),
                rcode=st.sampled_from(["NOERROR", "NXDOMAIN"]),
                ip_ttl=st.sampled_from([None, 50, 60]),
            ),
            max_size=3,
        )
    )
    public = draw(st.sampled_from([(), (exchange(*replies, failure=draw(FAILURES)),)]))
    failure = draw(FAILURES)
    base = vantage(*addresses, failure=failure, public=public, endpoints=())
    return replace(base, endpoints=tuple(draw(st.lists(endpoints(), max_size=3))))


@settings(max_examples=400, deadline=None)
@given(
    agent=views(),
    control=st.none() | views(),
    online=st.sampled_from([None, True, False]),
    url=st.sampled_from(["https://wikipedia.org/", "http://wikipedia.org/"]),
    with_fps=st.booleans(),
)
def test_decide_is_total_and_speaks_the_taxonomy(
    agent: Vantage, control: Vantage | None, online: bool | None, url: str, with_fps: bool
) -> None:
    result = decide(
        target(url), agent, control, online=online, fingerprints=FPS if with_fps else None
    )
    assert result.verdict in VERDICTS
    assert result.verdict != "throttled"
    assert all(isinstance(v, str | int | float | bool) for v in result.evidence.values())
    assert result == decide(
        target(url), agent, control, online=online, fingerprints=FPS if with_fps else None
    )

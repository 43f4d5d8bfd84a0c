"""The verdict's TLS rules (docs/design/002-verdicts.md): handshakes cut, the SNI swap, and
interception told by the certificate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.model import failures as f
from agent.model.measurement import Vantage, Verdict
from tests.agent.observations import BENIGN, SITE_IP, endpoint, handshake, vantage
from tests.agent.verdict.cases import OTHER_IP, assert_verdict, judge


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


def test_tls_cut_where_control_could_not_connect_is_down() -> None:
    """The control failed a layer earlier: a failure it shares, whatever the layer."""
    control = vantage(endpoints=(endpoint(tcp=f.GENERIC_TIMEOUT),))
    agent = sni_blocked(f.CONNECTION_RESET)
    assert_verdict(
        judge(agent, control),
        "down",
        failure=f.CONNECTION_RESET,
        control_failure=f.GENERIC_TIMEOUT,
    )


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
    assert_verdict(judge(agent), "inconclusive", ip=SITE_IP, failure=f.CONNECTION_RESET)


def test_interception_with_untrusted_certificate() -> None:
    """The lab's gandhara.rferl.org row."""
    fake = handshake(
        validation_failure=f.SSL_UNKNOWN_AUTHORITY, issuer="Interceptor", leaf="cc" * 32
    )
    agent = vantage(endpoints=(endpoint(tls=fake),))
    assert_verdict(
        judge(agent, vantage()), "tls.mitm", issuer="Interceptor", reason=f.SSL_UNKNOWN_AUTHORITY
    )
    # Alone, an untrusted issuer is as likely the site's own private CA: no accusation.
    assert_verdict(
        judge(agent), "inconclusive", failure=f.SSL_UNKNOWN_AUTHORITY, reason="no control"
    )


def test_interception_with_a_trusted_but_foreign_issuer() -> None:
    state = handshake(issuer="State Root CA", leaf="dd" * 32)
    agent = vantage(endpoints=(endpoint(tls=state),))
    assert_verdict(judge(agent, vantage()), "tls.mitm", issuer="State Root CA")
    # A rotated leaf from the same issuer is the site's business.
    rotated = vantage(endpoints=(endpoint(tls=handshake(leaf="ee" * 32)),))
    assert judge(rotated, vantage()) == Verdict("ok")


@pytest.mark.parametrize(
    "failure", [f.SSL_INVALID_CERTIFICATE, f.SSL_INVALID_HOSTNAME, f.SSL_UNKNOWN_AUTHORITY]
)
def test_bad_certificate_for_everyone_is_down(failure: str) -> None:
    """Expired, misnamed or from an unknown root for the control too: no browser opens the
    site anywhere. Not ``ok``, and not interception."""
    bad = handshake(validation_failure=failure, issuer="Site's own CA")
    both = vantage(endpoints=(endpoint(tls=bad),))
    assert_verdict(judge(both, both), "down", failure=failure, control_failure=failure)
    failed_control = vantage(endpoints=(endpoint(tls=handshake(failure=f.EOF), http=None),))
    assert_verdict(judge(both, failed_control), "down", failure=failure, control_failure=f.EOF)
    no_connect = vantage(endpoints=(endpoint(tcp=f.CONNECTION_REFUSED),))
    assert_verdict(judge(both, no_connect), "down", control_failure=f.CONNECTION_REFUSED)


def test_another_bad_certificate_than_the_controls_is_interception() -> None:
    """The site's certificate expired, and the agent is shown an interceptor's instead."""
    expired = handshake(validation_failure=f.SSL_INVALID_CERTIFICATE, issuer="Site CA")
    fake = handshake(validation_failure=f.SSL_UNKNOWN_AUTHORITY, issuer="Box", leaf="cc" * 32)
    agent, control = (vantage(endpoints=(endpoint(tls=t),)) for t in (fake, expired))
    assert_verdict(judge(agent, control), "tls.mitm", reason="issuer differs: Site CA")


def test_control_certificate_is_taken_from_another_endpoint_when_needed() -> None:
    fake = handshake(validation_failure=f.SSL_INVALID_HOSTNAME, issuer=None)
    agent = vantage(endpoints=(endpoint(tls=fake),))
    control = vantage(endpoints=(endpoint(OTHER_IP), endpoint(SITE_IP, tls=None)))
    result = judge(agent, control)
    assert_verdict(result, "tls.mitm", reason=f.SSL_INVALID_HOSTNAME)
    assert "issuer" not in result.evidence
    # A control with no certificate to compare with: a doubt, never ok.
    no_tls = vantage(endpoints=(endpoint(SITE_IP, tls=None),))
    assert_verdict(judge(agent, no_tls), "inconclusive", failure=f.SSL_INVALID_HOSTNAME)


def test_invalid_certificate_without_control_is_inconclusive() -> None:
    expired = handshake(validation_failure=f.SSL_INVALID_CERTIFICATE)
    result = judge(vantage(endpoints=(endpoint(tls=expired),)))
    assert_verdict(result, "inconclusive", failure=f.SSL_INVALID_CERTIFICATE, reason="no control")
    unstated = replace(handshake(), validated=False)
    assert_verdict(
        judge(vantage(endpoints=(endpoint(tls=unstated),))),
        "inconclusive",
        failure=f.SSL_INVALID_CERTIFICATE,
    )


def test_a_completed_control_handshake_elsewhere_beats_a_failed_one_here() -> None:
    fake = handshake(validation_failure=f.SSL_UNKNOWN_AUTHORITY, issuer="Box", leaf="cc" * 32)
    agent = vantage(endpoints=(endpoint(tls=fake),))
    control = vantage(
        SITE_IP,
        OTHER_IP,
        endpoints=(
            endpoint(SITE_IP, tls=handshake(failure=f.GENERIC_TIMEOUT), http=None),
            endpoint(OTHER_IP),
        ),
    )
    assert_verdict(judge(agent, control), "tls.mitm", reason=f.SSL_UNKNOWN_AUTHORITY)

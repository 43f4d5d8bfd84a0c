"""The verdict's HTTP rules (docs/design/002-verdicts.md): requests cut, the Host swap,
blockpages (by fingerprint only) and differences from the control's page."""

from __future__ import annotations

import pytest

from agent.model import failures as f
from agent.model.measurement import Vantage, Verdict
from agent.model.observations import HTTPRoundTrip
from tests.agent.observations import BENIGN, BLOCKPAGE_FP, SITE_IP, cut, endpoint, page, vantage
from tests.agent.verdict.cases import OTHER_IP, assert_verdict, judge


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
    # Cut differently for the control, or before the request: still a failure it shares.
    other = vantage(scheme="http", endpoints=(endpoint(scheme="http", http=cut()),))
    assert_verdict(
        judge(agent, other, http=True), "down", failure=f.EOF, control_failure=f.CONNECTION_RESET
    )
    refused = vantage(scheme="http", endpoints=(endpoint(scheme="http", tcp=f.CONNECTION_REFUSED),))
    assert_verdict(judge(agent, refused, http=True), "down", control_failure=f.CONNECTION_REFUSED)


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


def test_response_unlike_the_control_in_every_way_is_only_a_diff() -> None:
    """A CAPTCHA or rate-limit page served to the agent's address differs in status, title
    and length, as a blockpage would: without a fingerprint it names no censor."""
    other = page(403, title="Access denied", body_length=300)
    agent = vantage(endpoints=(endpoint(http=other),))
    assert_verdict(
        judge(agent, vantage()),
        "http.diff",
        reason="differs from control: status, title, length",
        status=403,
        control_status=200,
        title_differs=True,
        length_ratio=0.06,
        ip=SITE_IP,
    )


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (page(403, body_length=5000), "differs from control: status"),
        (page(title="Something else", body_length=300), "differs from control: title, length"),
        (page(403, title="Access denied"), "differs from control: status, title"),
    ],
)
def test_response_partly_unlike_the_control_is_a_diff(response: HTTPRoundTrip, reason: str) -> None:
    agent = vantage(endpoints=(endpoint(http=response),))
    result = judge(agent, vantage())
    assert_verdict(result, "http.diff", reason=reason, control_status=200)
    assert result.evidence["title_differs"] == (response.title != "Wikipedia")


def test_a_page_without_control_is_judged_by_its_status() -> None:
    """No control: a fingerprint still decides, and an error status is a doubt, not ok."""
    challenge = vantage(endpoints=(endpoint(http=page(429, title="Slow down")),))
    assert_verdict(judge(challenge), "inconclusive", status=429, reason="no control")
    assert judge(vantage(endpoints=(endpoint(http=page(title="Other")),))) == Verdict("ok")


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
            endpoint(OTHER_IP, http=page(title="Blocked", fingerprint=BLOCKPAGE_FP)),
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

"""The verdict's DNS rules for ghost names (docs/design/002-verdicts.md): a name that exists
nowhere, which the agent's resolver answers anyway."""

from __future__ import annotations

from agent.model import failures as f
from agent.model.measurement import Vantage
from agent.verdict import decide
from tests.agent.observations import (
    BLOCKPAGE_FP,
    endpoint,
    exchange,
    page,
    reply,
    target,
    vantage,
)
from tests.agent.verdict.cases import BLOCKPAGE_IP, assert_verdict, judge


def ghost(fingerprint: str | None = BLOCKPAGE_FP, scheme: str = "http") -> Vantage:
    served = page(title="Blocked", body_length=400, fingerprint=fingerprint)
    nxdomain = (exchange(reply(rcode="NXDOMAIN")),)
    return vantage(
        BLOCKPAGE_IP,
        scheme=scheme,
        endpoints=(endpoint(BLOCKPAGE_IP, scheme, http=served),),
        public=nxdomain,
    )


def test_ghost_name_answered_with_a_blockpage_server_is_mismatch() -> None:
    """The name exists nowhere; the ISP resolver answers its blockpage server's address, whose
    page matches a fingerprint. The technique is DNS, not an HTTP blockpage."""
    # The control measured the blockpage server's address too, and could not reach it.
    unreachable = endpoint(BLOCKPAGE_IP, "http", tcp=f.NETWORK_UNREACHABLE)
    control = vantage(failure=f.DNS_NXDOMAIN, endpoints=(unreachable,), scheme="http")
    for scheme in ("http", "https"):
        agent = ghost(scheme=scheme)
        assert_verdict(
            decide(target(f"{scheme}://wikipedia.org/"), agent, control),
            "dns.mismatch",
            trigger="resolver",
            fingerprint=BLOCKPAGE_FP,
            ip=BLOCKPAGE_IP,
            control_failure=f.DNS_NXDOMAIN,
        )
    # Without a control, public resolvers that say NXDOMAIN are the outside view.
    assert_verdict(judge(ghost(), http=True), "dns.mismatch", public_rcode="NXDOMAIN")


def test_ghost_name_without_a_fingerprint_accuses_no_one() -> None:
    """An ISP's search page for unknown names, or a name that resolves only inside the
    country, looks the same: inconclusive, with what was seen."""
    control = vantage(failure=f.DNS_NXDOMAIN, endpoints=(), scheme="http")
    assert_verdict(
        judge(ghost(None), control, http=True),
        "inconclusive",
        addresses=BLOCKPAGE_IP,
        control_failure=f.DNS_NXDOMAIN,
    )
    assert_verdict(judge(ghost(None), http=True), "inconclusive", public_rcode="NXDOMAIN")


def test_ghost_name_with_a_dns_fingerprint_is_mismatch() -> None:
    agent = vantage("203.0.113.99")
    control = vantage(failure=f.DNS_NXDOMAIN, endpoints=())
    assert_verdict(
        judge(agent, control, fingerprints=True),
        "dns.mismatch",
        fingerprint="dns.sinkhole",
        control_failure=f.DNS_NXDOMAIN,
    )

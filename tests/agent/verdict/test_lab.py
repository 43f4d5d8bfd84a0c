"""The verdict on observations shaped like the censor lab's: every row of its scenario table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from agent.model import failures as f
from agent.model.measurement import Vantage
from agent.verdict import decide
from tests.agent.observations import (
    BENIGN,
    BLOCKPAGE_FP,
    cut,
    endpoint,
    exchange,
    handshake,
    page,
    reply,
    system,
    target,
    vantage,
)
from tests.agent.verdict.cases import BLOCKPAGE_IP, FPS
from tests.lab.scenarios import Scenario, load


def lab_views(row: Scenario) -> tuple[Vantage, Vantage | None, bool | None]:
    s = row.scheme
    ip = row.ip
    control = vantage(ip, scheme=s)
    technique = row.technique
    if technique in EVERYWHERE or technique in ("captcha", "dns-ghost", "sni-fin", "host-fin"):
        return more_views(row), more_control(row), None
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
    if technique in ("sni-reset", "sni-drop", "sni-onpath"):
        failure = f.GENERIC_TIMEOUT if technique == "sni-drop" else f.CONNECTION_RESET
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
    if technique == "ip6-drop":
        return dual(row, f.GENERIC_TIMEOUT), dual(row), None
    if technique == "shutdown":
        return vantage(failure=f.GENERIC_TIMEOUT, endpoints=(), public=()), None, False
    return vantage(ip, scheme=s), control, None  # clean, and throttle (a later issue)


def more_views(row: Scenario) -> Vantage:
    """The agent's view of the rows broken for everyone, CAPTCHA, ghost names and FIN."""
    s, ip, technique = row.scheme, row.ip, row.technique
    if technique in EVERYWHERE:
        return EVERYWHERE[technique](row)
    if technique == "captcha":
        challenge = page(403, title="Just a moment...", body_length=300)
        return vantage(ip, scheme=s, endpoints=(endpoint(ip, s, http=challenge),))
    if technique == "dns-ghost":
        blockpage = page(title="Blocked", body_length=400, fingerprint=BLOCKPAGE_FP)
        nxdomain = (exchange(reply(rcode="NXDOMAIN")),)
        end = endpoint(BLOCKPAGE_IP, s, http=blockpage, http_benign=blockpage)
        return vantage(BLOCKPAGE_IP, scheme=s, endpoints=(end,), public=nxdomain)
    if technique == "sni-fin":
        end = endpoint(ip, s, tls=handshake(failure=f.EOF), tls_benign=handshake(BENIGN), http=None)
        return vantage(ip, scheme=s, endpoints=(end,))
    end = endpoint(ip, s, http=cut(f.EOF), http_benign=page(host=BENIGN))  # host-fin
    return vantage(ip, scheme=s, endpoints=(end,))


def more_control(row: Scenario) -> Vantage:
    """The control's view: the same failure for a site broken for everyone, else the site."""
    s, ip, technique = row.scheme, row.ip, row.technique
    if technique == "private-everywhere":
        return vantage(failure=f.DNS_NON_PUBLIC_ANSWER, endpoints=(), scheme=s)
    if technique == "dns-ghost":
        unreachable = endpoint(BLOCKPAGE_IP, s, tcp=f.NETWORK_UNREACHABLE)
        return vantage(failure=f.DNS_NXDOMAIN, endpoints=(unreachable,), scheme=s)
    if technique in EVERYWHERE:
        return EVERYWHERE[technique](row)
    return vantage(ip, scheme=s)


def _bad_cert(row: Scenario) -> Vantage:
    failure = {
        "expired": f.SSL_INVALID_CERTIFICATE,
        "wrong-host": f.SSL_INVALID_HOSTNAME,
        "unknown-root": f.SSL_UNKNOWN_AUTHORITY,
    }[row.params.get("cert", "expired")]
    bad = handshake(validation_failure=failure, issuer="the site's own CA")
    return vantage(row.ip, endpoints=(endpoint(row.ip, tls=bad),))


def _server(failure: str) -> Callable[[Scenario], Vantage]:
    def view(row: Scenario) -> Vantage:
        cut_tls = handshake(failure=failure)
        end = endpoint(
            row.ip, tls=cut_tls, tls_benign=handshake(BENIGN, failure=failure), http=None
        )
        return vantage(row.ip, endpoints=(end,))

    return view


EVERYWHERE: dict[str, Callable[[Scenario], Vantage]] = {
    "private-everywhere": lambda row: vantage(
        "127.0.0.1", endpoints=(endpoint("127.0.0.1", tcp=f.CONNECTION_REFUSED),)
    ),
    "nxdomain-everywhere": lambda row: vantage(failure=f.DNS_NXDOMAIN, endpoints=()),
    "noanswer-everywhere": lambda row: vantage(failure=f.DNS_NO_ANSWER, endpoints=()),
    "bad-cert": _bad_cert,
    "reset-everywhere": _server(f.CONNECTION_RESET),
    "silent-everywhere": _server(f.GENERIC_TIMEOUT),
}


def dual(row: Scenario, six_failure: str | None = None) -> Vantage:
    """A dual-stack view of the row's site: its IPv6 endpoint fails with ``six_failure``."""
    assert row.ip6 is not None
    base = vantage(row.ip, scheme=row.scheme)
    aaaa = replace(system(row.ip6), qtype="AAAA")
    failed = {"tcp": six_failure} if six_failure else {}
    six = endpoint(row.ip6, row.scheme, **failed)
    dns = replace(
        base.dns, system6=aaaa, public6=(replace(exchange(reply(row.ip6)), qtype="AAAA"),)
    )
    return Vantage(dns=dns, endpoints=(*base.endpoints, six))


# Redirect chains are judged hop by hop (test_chain.py, and the lab end to end).
# The throttle and protocol tests' rows are judged by their own tests (probe --throttle,
# --protocols), not the site test's.
LAB = [
    r
    for r in load().rows
    if r.expected not in ("throttled", "quic.blocked", "vpn.blocked") and r.technique != "redirect"
]


@pytest.mark.parametrize("row", LAB, ids=[r.domain for r in LAB])
def test_lab_row_verdicts(row: Scenario) -> None:
    agent, control, online = lab_views(row)
    result = decide(target(row.url), agent, control, online=online, fingerprints=FPS)
    assert result.verdict == row.expected, result
    if row.trigger is not None and row.technique != "http-blockpage":
        assert result.evidence.get("trigger") == row.trigger, result
    assert result.evidence.get("family") == row.family, result

"""The verdict on observations shaped like the censor lab's: every row of its scenario table."""

from __future__ import annotations

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


# The throttle and protocol tests' rows are judged by their own tests (probe --throttle,
# --protocols), not the site test's.
LAB = [r for r in load().rows if r.expected not in ("throttled", "quic.blocked", "vpn.blocked")]


@pytest.mark.parametrize("row", LAB, ids=[r.domain for r in LAB])
def test_lab_row_verdicts(row: Scenario) -> None:
    agent, control, online = lab_views(row)
    result = decide(target(row.url), agent, control, online=online, fingerprints=FPS)
    assert result.verdict == row.expected, result
    if row.trigger is not None and row.technique != "http-blockpage":
        assert result.evidence.get("trigger") == row.trigger, result

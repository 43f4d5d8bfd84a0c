"""The verdict is total and deterministic, and speaks only the taxonomy, for any observations."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model import failures as f
from agent.model.measurement import Vantage
from agent.model.observations import EndpointObservation
from agent.model.verdicts import VERDICTS
from agent.verdict import decide
from tests.agent.observations import (
    BENIGN,
    BLOCKPAGE_FP,
    SITE_IP,
    endpoint,
    exchange,
    handshake,
    page,
    reply,
    target,
    vantage,
)
from tests.agent.verdict.cases import BLOCKPAGE_IP, FPS, OTHER_IP

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
IPS = st.sampled_from(
    [SITE_IP, OTHER_IP, BLOCKPAGE_IP, "10.0.0.1", "::1", "bogus", "2001:db8::10", "fd00::1"]
)
IPS6 = st.sampled_from(["2001:db8::10", "2001:db8::99", "fd00::1", "::1"])


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
    if draw(st.booleans()):  # asked AAAA too: the families are judged apart
        six = vantage(*draw(st.lists(IPS6, max_size=2, unique=True)), failure=draw(FAILURES))
        dns = replace(base.dns, system6=six.dns.system, public6=draw(st.sampled_from([(), public])))
        base = replace(base, dns=dns)
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

"""What a blocked site test's trace repeats (``agent.trace``): only a verdict whose trigger
matches its layer is traceable; the plan takes the failing endpoint of the verdict's family
(on the redirect hop that failed), an ``ip`` trigger only with a reference of the same family,
and ``force`` traces an open site by its SNI or Host on its first connected endpoint. And an
answer's HTTP status is read from its first line only."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.model import failures as f
from agent.model.measurement import Hop, SiteMeasurement, Target, Vantage, Verdict
from agent.model.observations import EndpointObservation, ThrottleObservation
from agent.model.protocols import ProtocolObservation
from agent.probes.trace import TracePlan
from agent.trace import TraceConfig, _status, plan_for, traceable
from agent.verdict.judging import Evidence
from tests.agent.observations import (
    SITE_IP,
    cut,
    endpoint,
    handshake,
    target,
    vantage,
)
from tests.agent.traces import observation

OTHER_IP, SITE6, OTHER6 = "192.0.2.11", "2001:db8::10", "2001:db8::11"
REF4, REF6 = "198.51.100.200", "2001:db8:ffff::200"
CONFIG = TraceConfig(benign_name="example.net", references=(REF4, REF6), max_ttl=20)


def site(
    verdict: Verdict,
    agent: Vantage | None = None,
    url: str = "https://wikipedia.org/wiki/Main",
    hops: tuple[Hop, ...] = (),
) -> SiteMeasurement:
    return SiteMeasurement(
        id="0190b7a4-0000-7000-8000-000000000000",
        url=url,
        started_ms=1_717_171_717_171,
        ms=900.0,
        agent=agent or vantage(),
        control=None,
        control_failure=None,
        online=True,
        verdict=verdict,
        hops=hops,
    )


def reset_tls(ip: str) -> EndpointObservation:
    return endpoint(ip, tls=handshake(failure=f.CONNECTION_RESET), http=None)


def refused(ip: str, scheme: str = "https") -> EndpointObservation:
    return endpoint(ip, scheme, tcp=f.GENERIC_TIMEOUT)


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        (Verdict("tcp.timeout", {"trigger": "ip"}), "ip"),
        (Verdict("tcp.reset", {"trigger": "ip"}), "ip"),
        (Verdict("tls.reset", {"trigger": "sni"}), "sni"),
        (Verdict("tls.timeout", {"trigger": "sni", "family": "6"}), "sni"),
        (Verdict("http.blockpage", {"trigger": "host"}), "host"),
        (Verdict("http.reset", {"trigger": "host"}), "host"),
        (Verdict("tls.reset", {"trigger": "ip"}), None),  # the swap failed too: not the SNI
        (Verdict("tls.reset", {"trigger": "host"}), None),
        (Verdict("http.reset", {"trigger": "sni"}), None),
        (Verdict("tcp.timeout", {"trigger": "sni"}), None),
        (Verdict("tls.reset", {}), None),
        (Verdict("tls.reset", {"trigger": 1}), None),
        (Verdict("dns.nxdomain", {"trigger": "resolver"}), None),
        (Verdict("dns.injected", {"trigger": "ip"}), None),
        (Verdict("ok"), None),
        (Verdict("down", {"trigger": "ip"}), None),
    ],
    ids=lambda v: f"{v.verdict}-{v.evidence.get('trigger')}" if isinstance(v, Verdict) else str(v),
)
def test_traceable_takes_matching_triggers_only(verdict: Verdict, expected: str | None) -> None:
    assert traceable(site(verdict)) == expected


BLOCKED = site(Verdict("tls.reset", {"trigger": "sni"}), vantage(endpoints=(reset_tls(SITE_IP),)))
THROTTLE = ThrottleObservation("sni", "wikipedia.org", "example.com")
PROTOCOLS = ProtocolObservation("wikipedia.org", "example.com")


@pytest.mark.parametrize(
    "other",
    [
        replace(BLOCKED, trace=observation()),
        replace(BLOCKED, throttle=THROTTLE),
        replace(BLOCKED, protocols=PROTOCOLS),
    ],
    ids=["trace", "throttle", "protocols"],
)
def test_a_trace_throttle_or_protocol_test_is_not_traceable(other: SiteMeasurement) -> None:
    assert plan_for(BLOCKED, CONFIG) is not None
    assert traceable(other) is None
    assert plan_for(other, CONFIG) is None


@pytest.mark.parametrize(
    "other",
    [
        replace(BLOCKED, trace=observation()),
        replace(BLOCKED, throttle=THROTTLE),
        replace(BLOCKED, protocols=PROTOCOLS),
    ],
    ids=["trace", "throttle", "protocols"],
)
def test_force_never_traces_a_trace_throttle_or_protocol_test(other: SiteMeasurement) -> None:
    assert plan_for(other, CONFIG, force=True) is None


def test_the_plan_is_the_failing_endpoint() -> None:
    agent = vantage(SITE_IP, OTHER_IP, endpoints=(endpoint(SITE_IP), reset_tls(OTHER_IP)))
    planned = plan_for(site(Verdict("tls.reset", {"trigger": "sni"}), agent), CONFIG)
    assert planned is not None
    assert planned == (
        target("https://wikipedia.org/wiki/Main"),
        TracePlan(
            trigger="sni",
            name="wikipedia.org",
            benign="example.net",
            address=OTHER_IP,
            port=443,
            path="/wiki/Main",
            reference_address=REF4,
            max_ttl=20,
            window=CONFIG.window,
            connect_timeout=CONFIG.timeout,
        ),
    )


def test_the_plan_is_of_the_verdicts_family() -> None:
    agent = vantage(
        SITE_IP, SITE6, endpoints=(reset_tls(SITE_IP), endpoint(SITE6), reset_tls(OTHER6))
    )
    blocked = site(Verdict("tls.reset", {"trigger": "sni", "family": "6"}), agent)
    planned = plan_for(blocked, CONFIG)
    assert planned is not None
    assert (planned[1].address, planned[1].reference_address) == (OTHER6, REF6)
    four = plan_for(replace(blocked, verdict=Verdict("tls.reset", {"trigger": "sni"})), CONFIG)
    assert four is not None
    assert (four[1].address, four[1].reference_address) == (SITE_IP, REF4)
    # No reference of the family: an sni trace still runs, compared with the other port only.
    alone = plan_for(blocked, replace(CONFIG, references=(REF4,)))
    assert alone is not None
    assert (alone[1].address, alone[1].reference_address) == (OTHER6, None)


def test_the_plan_of_a_redirect_hop_is_the_hops() -> None:
    hop_url = "http://blocked.example/a/b?c=d"
    hop_view = vantage(
        OTHER_IP,
        scheme="http",
        endpoints=(
            endpoint(OTHER_IP, "http", http=cut(), http_benign=replace(cut(), failure=None)),
        ),
    )
    blocked = site(
        Verdict("http.reset", {"trigger": "host", "redirect_hop": 1}),
        url="https://wikipedia.org/",
        hops=(Hop(url=hop_url, agent=hop_view, control=None, control_failure=None),),
    )
    planned = plan_for(blocked, CONFIG)
    assert planned is not None
    hop_target, plan = planned
    assert hop_target == Target.parse(hop_url)
    assert (plan.trigger, plan.name, plan.address, plan.port) == (
        "host",
        "blocked.example",
        OTHER_IP,
        80,
    )
    assert plan.path == "/a/b?c=d"
    # A hop number out of range is the first URL's view (whose endpoints did not fail).
    stray = replace(blocked, verdict=Verdict("http.reset", {"trigger": "host", "redirect_hop": 2}))
    assert plan_for(stray, CONFIG) is None


def test_an_ip_trigger_needs_a_reference_of_its_family() -> None:
    agent = vantage(SITE_IP, endpoints=(refused(SITE_IP),))
    blocked = site(Verdict("tcp.timeout", {"trigger": "ip"}), agent)
    planned = plan_for(blocked, CONFIG)
    assert planned is not None
    plan = planned[1]
    assert (plan.trigger, plan.name, plan.benign, plan.address) == ("ip", SITE_IP, REF4, SITE_IP)
    assert plan.reference_address == REF4
    assert plan_for(blocked, replace(CONFIG, references=(REF6,))) is None
    assert plan_for(blocked, replace(CONFIG, references=())) is None
    six = site(
        Verdict("tcp.timeout", {"trigger": "ip"}), vantage(SITE6, endpoints=(refused(SITE6),))
    )
    planned6 = plan_for(six, CONFIG)
    assert planned6 is not None
    assert (planned6[1].name, planned6[1].benign) == (SITE6, REF6)


def test_no_failing_endpoint_no_plan() -> None:
    # The verdict says sni, but every handshake worked (a stale or hand-made record).
    assert plan_for(site(Verdict("tls.reset", {"trigger": "sni"})), CONFIG) is None


@pytest.mark.parametrize(
    ("url", "trigger", "port"),
    [
        pytest.param("https://wikipedia.org/", "sni", 443, id="https"),
        pytest.param(
            "http://wikipedia.org/x",
            "host",
            80,
            id="http",
        ),
    ],
)
def test_force_traces_an_open_site_on_its_first_connected_endpoint(
    url: str, trigger: str, port: int
) -> None:
    scheme = url.split(":")[0]
    agent = vantage(
        SITE_IP,
        OTHER_IP,
        scheme=scheme,
        endpoints=(refused(SITE_IP, scheme), endpoint(OTHER_IP, scheme), endpoint(SITE6, scheme)),
    )
    ok = site(Verdict("ok", {"family": "6"}), agent, url=url)
    assert plan_for(ok, CONFIG) is None
    planned = plan_for(ok, CONFIG, force=True)
    assert planned is not None
    plan = planned[1]
    # The evidence is dropped: a family or hop of an ok verdict says nothing about a block.
    assert (plan.trigger, plan.name, plan.address, plan.port) == (
        trigger,
        "wikipedia.org",
        OTHER_IP,
        port,
    )
    assert plan.benign == "example.net"
    nothing = site(Verdict("ok"), vantage(SITE_IP, endpoints=(refused(SITE_IP, scheme),)), url=url)
    assert plan_for(nothing, CONFIG, force=True) is None


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_host_trace_takes_the_endpoint_where_the_host_failed(scheme: str) -> None:
    # What agent.verdict.decide makes of these views with a clean control: http.reset on
    # OTHER_IP, by the Host (the first endpoint never got as far as HTTP).
    swapped = endpoint(OTHER_IP, scheme, http=cut(), http_benign=replace(cut(), failure=None))
    never = (
        refused(SITE_IP, scheme)
        if scheme == "http"
        else endpoint(SITE_IP, tls=handshake(failure=f.CONNECTION_RESET), http=None)
    )
    agent = vantage(SITE_IP, OTHER_IP, scheme=scheme, endpoints=(never, swapped))
    evidence: Evidence = {"failure": f.CONNECTION_RESET, "ip": OTHER_IP, "trigger": "host"}
    blocked = site(Verdict("http.reset", evidence), agent, url=f"{scheme}://wikipedia.org/")
    planned = plan_for(blocked, CONFIG)
    assert planned is not None
    assert planned[1].address == OTHER_IP


def test_force_on_a_blocked_site_keeps_its_own_trigger() -> None:
    agent = vantage(SITE_IP, endpoints=(refused(SITE_IP),))
    planned = plan_for(site(Verdict("tcp.timeout", {"trigger": "ip"}), agent), CONFIG, force=True)
    assert planned is not None
    assert planned[1].trigger == "ip"


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"HTTP/1.1 403 Forbidden", 403),
        (b"HTTP/1.0 200 OK\r\nServer: x", 200),
        (b"HTTP/1.1 451", 451),
        (b"HTTP/2 302 Found", 302),
        (b"\x16\x03\x03\x00\x4a\x02\x00\x00\x46\x03\x03", None),  # a ServerHello
        (b"", None),
        (b"HTTP/1.1", None),
        (b"HTTP/1.1 4030 Forbidden", None),
        (b"HTTP/1.1 40 Forbidden", None),
        (b"HTTP/1.1 abc Forbidden", None),
        (b"ICY 200 OK", None),
        (b"Server: HTTP/1.1 200 OK\r\nHTTP/1.1 200 OK", None),
    ],
)
def test_status_is_read_from_the_first_line_only(head: bytes, status: int | None) -> None:
    assert _status(head) == status

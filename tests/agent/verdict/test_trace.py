"""The trace's verdict (``agent.verdict.trace``): where the censor sits (``censor_ttl``, the
routers before it), what it does (the last attempt's reaction, named as the site test names
it), whether it could drop (``path``) and how its packets give it away (``injected``); what a
trace cannot say is ``inconclusive``. Total over any trace, and reclassified the same way."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from agent.model import trace as t
from agent.model.measurement import Verdict
from agent.model.trace import TraceObservation, TracePacket, TraceReference
from agent.model.verdicts import VERDICTS
from agent.verdict import redecide
from agent.verdict.judging import Evidence
from agent.verdict.trace import REACTION_VERDICTS, ROUTERS_LIMIT, decide_trace, locate
from agent.wire.record import decode_measurement, encode_measurement
from tests.agent.traces import (
    BEYOND,
    REFERENCE,
    ROUTERS,
    SERVER,
    hops,
    last,
    measurement,
    observation,
    pair,
    traces,
)

R1, R2, R3 = ROUTERS
FP = "cp.b_nat_pak_isp_common_blockpage"
RST_62 = TracePacket("rst", 62, 0, 11.0)
GENUINE_80 = TraceReference(SERVER, 80, TracePacket("synack", 60, 4321, 0.0))
EXCEEDED = pair(4, t.EXCEEDED, t.EXCEEDED, router=BEYOND)

PATH3 = f"{R1} {R2} {R3}"


def found(
    name: str,
    trigger: str,
    reaction: str,
    ttl: int = 4,
    after: str | None = R3,
    routers: str = PATH3,
    **more: str | int,
) -> Verdict:
    """A located verdict, by default the censor at TTL 4 behind the three routers."""
    evidence: Evidence = {"trigger": trigger, "censor_ttl": ttl}
    if after is not None:
        evidence["after_hop"] = after
    evidence |= {"routers": routers, "reaction": reaction, **more}
    return Verdict(name, evidence)


CASES = [
    pytest.param(
        observation(
            hops(*ROUTERS),
            pair(4, t.RESET, t.EXCEEDED, router=BEYOND),
            last(t.RESET, RST_62),
            references=(GENUINE_80,),
        ),
        found(
            "tls.reset",
            "sni",
            "rst",
            path="in",
            injected_ttl=62,
            server_ttl=60,
            injected="rst ttl=62 id=0; server ttl=60 id=4321 (port 80)",
        ),
        id="rst-at-ttl-4-after-three-routers",
    ),
    pytest.param(
        observation(
            hops(*ROUTERS),
            pair(4, t.SILENT, t.EXCEEDED, router=BEYOND),
            pair(4, t.SILENT, t.EXCEEDED, router=BEYOND),
            last(t.SILENT),
        ),
        found("tls.timeout", "sni", "none", path="in"),
        id="drop-silent-in-both-pairs",
    ),
    pytest.param(
        observation(
            hops(*ROUTERS),
            pair(4, t.SILENT, t.EXCEEDED, router=BEYOND),
            pair(4, t.EXCEEDED, t.EXCEEDED, router=BEYOND),
            last(t.SILENT),
        ),
        Verdict("tls.timeout", {"trigger": "sni", "reason": "not located"}),
        id="one-silent-pair-then-exceeded-is-no-censor",
    ),
    pytest.param(
        observation(
            hops(*ROUTERS),
            pair(4, t.SILENT, t.DATA),
            pair(4, t.SILENT, t.DATA),
            last(t.SILENT),
            trigger="host",
        ),
        found("http.timeout", "host", "none", path="in"),
        id="benign-gets-data-trigger-silent-is-a-drop",
    ),
    pytest.param(
        observation(
            hops(*ROUTERS),
            pair(4, t.DATA, t.DATA, fingerprint=FP),
            last(t.DATA, TracePacket("data", 62, 7, 12.0), status=403, fingerprint=FP),
            trigger="host",
        ),
        found(
            "http.blockpage",
            "host",
            "data",
            path="in",
            injected_ttl=62,
            injected="data ttl=62 id=7",
        ),
        id="proxy-blockpage-where-benign-gets-the-page",
    ),
    pytest.param(
        observation(hops(*ROUTERS), pair(4, t.DATA, t.DATA), last(t.DATA), trigger="host"),
        Verdict("ok", {"trigger": "host"}),
        id="both-get-the-page-alike-is-ok",
    ),
    pytest.param(
        observation(
            hops(*ROUTERS),
            pair(4, t.DATA, t.EXCEEDED, router=BEYOND, fingerprint=FP),
            last(t.DATA, status=403, fingerprint=FP),
            trigger="host",
        ),
        found("http.blockpage", "host", "data", path="in"),
        id="data-where-benign-died-at-a-router",
    ),
    pytest.param(
        observation(hops(*ROUTERS), pair(4, t.DATA, t.DATA), last(t.DATA)),
        Verdict("ok", {"trigger": "sni"}),
        id="benign-trace-reaches-the-host-alike",
    ),
    pytest.param(
        observation(hops(*ROUTERS), pair(4, t.SYN_ACK, t.SYN_ACK), last(t.SYN_ACK), trigger="ip"),
        Verdict("ok", {"trigger": "ip"}),
        id="ip-trace-reaches-the-host",
    ),
    pytest.param(
        observation(failure=t.UNAVAILABLE),
        Verdict("inconclusive", {"reason": "not run", "failure": t.UNAVAILABLE}),
        id="failure-not-run",
    ),
    pytest.param(
        observation(hops(R1), last(t.NO_CONNECTION)),
        Verdict("inconclusive", {"reason": "no connection", "trigger": "sni"}),
        id="last-attempt-no-connection",
    ),
    pytest.param(
        observation(hops(R1, R2)),
        Verdict("inconclusive", {"reason": "no connection", "trigger": "sni"}),
        id="no-last-attempt",
    ),
    pytest.param(
        observation(hops(*ROUTERS), pair(4, t.RESET, t.EXCEEDED, router=BEYOND), last(t.DATA)),
        found("inconclusive", "sni", "rst", reason="located, but the last attempt went through"),
        id="located-but-last-went-through",
    ),
    pytest.param(
        observation(hops(*ROUTERS), EXCEEDED, last(t.RESET, RST_62)),
        Verdict("tls.reset", {"trigger": "sni", "reason": "not located"}),
        id="blocked-but-not-located",
    ),
    pytest.param(
        observation(hops(R1, None, R3), pair(4, t.FIN, t.EXCEEDED), last(t.FIN), trigger="host"),
        found("http.eof", "host", "fin", 4, R3, f"{R1} * {R3}", path="in"),
        id="silent-router-shows-a-star",
    ),
    pytest.param(
        observation(hops(R1, R2, None), pair(4, t.RESET, t.EXCEEDED, router=BEYOND), last(t.FIN)),
        found("tls.eof", "sni", "rst", 4, R2, f"{R1} {R2} *", path="in"),
        id="after-hop-is-the-last-router-that-answered",
    ),
    pytest.param(
        observation(hops(None, None), pair(3, t.RESET, t.SILENT), last(t.RESET), trigger="host"),
        found("http.reset", "host", "rst", 3, None, "* *", path="in"),
        id="no-router-answered-no-after-hop",
    ),
    pytest.param(
        observation(
            hops(R1, R2),
            pair(3, t.SILENT, t.SYN_ACK),
            pair(3, t.SILENT, t.SYN_ACK),
            last(t.SILENT),
            trigger="ip",
        ),
        found("tcp.timeout", "ip", "none", 3, R2, f"{R1} {R2}", path="in"),
        id="ip-dropped-where-the-reference-host-answers",
    ),
    pytest.param(
        observation(hops(R1), pair(2, t.RESET, t.EXCEEDED, router=R2), last(t.RESET), trigger="ip"),
        found("tcp.refused", "ip", "rst", 2, R1, R1, path="in"),
        id="ip-reset",
    ),
    pytest.param(
        observation(
            hops(R1, R2),
            pair(3, t.UNREACHABLE, t.EXCEEDED, router=BEYOND),
            last(t.UNREACHABLE),
            trigger="ip",
        ),
        found("tcp.timeout", "ip", "unreachable", 3, R2, f"{R1} {R2}"),
        id="ip-unreachable",
    ),
]


@pytest.mark.parametrize(("obs", "expected"), CASES)
def test_decide_trace(obs: TraceObservation, expected: Verdict) -> None:
    verdict = decide_trace(obs)
    assert verdict == expected
    assert verdict.verdict in VERDICTS
    assert decide_trace(obs) == verdict  # deterministic


@pytest.mark.parametrize(("obs", "expected"), CASES)
def test_the_verdict_survives_the_wire_and_is_redecided(
    obs: TraceObservation, expected: Verdict
) -> None:
    stale = measurement(obs, Verdict("ok"))
    assert redecide(stale) == expected
    assert redecide(decode_measurement(encode_measurement(stale))) == expected


def test_every_reaction_verdict_is_a_verdict_name() -> None:
    assert set(REACTION_VERDICTS.values()) <= VERDICTS
    assert {"ok", "inconclusive", "http.blockpage"} <= VERDICTS


def _injected(*packets: TracePacket, references: tuple[TraceReference, ...] = ()) -> Verdict:
    obs = observation(
        hops(*ROUTERS),
        pair(4, t.RESET, t.EXCEEDED, router=BEYOND),
        last(t.RESET, *packets),
        references=references,
    )
    return decide_trace(obs)


@pytest.mark.parametrize(
    ("packets", "path"),
    [
        pytest.param((RST_62, TracePacket("data", 54, 900, 40.0)), "on", id="genuine-data-after"),
        pytest.param(
            (TracePacket("synack", 54, 1, 0.0), RST_62, TracePacket("fin", 54, 2, 41.0)),
            "in",
            id="only-a-fin-after",
        ),
        pytest.param((RST_62, TracePacket("data", 62, 3, 40.0)), "in", id="data-with-same-ttl"),
        pytest.param((TracePacket("data", 54, 4, 5.0), RST_62), "in", id="data-before-the-rst"),
        pytest.param((RST_62,), "in", id="nothing-after"),
    ],
)
def test_path_is_on_only_when_a_genuine_data_packet_follows(
    packets: tuple[TracePacket, ...], path: str
) -> None:
    evidence = _injected(*packets).evidence
    assert evidence["path"] == path
    assert evidence["injected_ttl"] == 62


def test_no_injected_packet_captured_leaves_path_in_and_no_ttls() -> None:
    evidence = _injected(TracePacket("synack", 54, 1, 0.0)).evidence
    assert evidence["path"] == "in"
    assert "injected_ttl" not in evidence
    assert "injected" not in evidence


def test_the_genuine_reference_is_the_first_unlike_the_injected_packet() -> None:
    like = TraceReference(SERVER, 80, TracePacket("rst", 62, 0, 0.0))  # reset by the censor too
    silent = TraceReference(SERVER, 80, None)
    genuine = TraceReference(REFERENCE, 443, TracePacket("synack", 55, 9, 0.0))
    later = TraceReference(REFERENCE, 80, TracePacket("synack", 50, 10, 0.0))
    evidence = _injected(RST_62, references=(like, silent, genuine, later)).evidence
    assert evidence["server_ttl"] == 55
    assert evidence["injected"] == "rst ttl=62 id=0; server ttl=55 id=9 (port 443)"
    # A reference with the injected TTL but another IP ID is another sender's packet.
    other_id = TraceReference(SERVER, 80, TracePacket("rst", 62, 77, 0.0))
    evidence = _injected(RST_62, references=(other_id,)).evidence
    assert evidence["injected"] == "rst ttl=62 id=0; server ttl=62 id=77 (port 80)"


def test_with_every_reference_alike_there_is_no_server_ttl() -> None:
    like = TraceReference(SERVER, 80, TracePacket("rst", 62, 0, 0.0))
    evidence = _injected(RST_62, references=(like, TraceReference(REFERENCE, 443, None))).evidence
    assert "server_ttl" not in evidence
    assert evidence["injected"] == "rst ttl=62 id=0"


def test_the_injected_text_of_ipv6_packets_has_no_ip_id() -> None:
    genuine = TraceReference("2001:db8::80", 80, TracePacket("synack", 58, None, 0.0))
    evidence = _injected(TracePacket("rst", 61, None, 3.0), references=(genuine,)).evidence
    assert evidence["injected"] == "rst ttl=61 id=-; server ttl=58 id=- (port 80)"
    assert (evidence["injected_ttl"], evidence["server_ttl"]) == (61, 58)


def _routers(count: int, six: bool) -> list[str]:
    if six:
        return [f"2001:db8:ffff:ffff:ffff:ffff:ffff:{0xF000 + i:x}" for i in range(count)]
    return [f"198.51.{100 + i // 250}.{i % 250 + 1}" for i in range(count)]


@pytest.mark.parametrize(
    ("count", "six"),
    [(20, False), (31, False), (7, True), (31, True)],
    ids=["20-ipv4", "31-ipv4", "7-ipv6", "31-ipv6"],
)
def test_long_router_lists_keep_the_nearest_and_still_encode(count: int, six: bool) -> None:
    routers = _routers(count, six)
    censor = count + 1
    obs = observation(
        hops(*routers), pair(censor, t.RESET, t.EXCEEDED, router=BEYOND), last(t.RESET, RST_62)
    )
    verdict = decide_trace(obs)
    listed = verdict.evidence["routers"]
    assert isinstance(listed, str)
    assert len(listed) <= ROUTERS_LIMIT
    first, *kept = listed.split(" ")
    assert first == "..."
    assert kept == routers[-len(kept) :]  # the nearest the censor, in order
    assert len(" ".join(["...", routers[-len(kept) - 1], *kept])) > ROUTERS_LIMIT  # no room left
    assert verdict.evidence["after_hop"] == routers[-1]
    assert verdict.evidence["censor_ttl"] == censor
    m = measurement(obs)
    assert decode_measurement(encode_measurement(m)).verdict == verdict


def test_routers_that_fit_are_listed_whole() -> None:
    routers = _routers(6, six=True)  # 233 characters
    obs = observation(hops(*routers), pair(7, t.RESET, t.EXCEEDED), last(t.RESET))
    assert decide_trace(obs).evidence["routers"] == " ".join(routers)


def test_sixteen_longest_ipv4_routers_fit_whole() -> None:
    routers = [f"198.251.255.{100 + i}" for i in range(16)]
    assert len(" ".join(routers)) == 255
    obs = observation(hops(*routers), pair(17, t.RESET, t.EXCEEDED), last(t.RESET))
    assert decide_trace(obs).evidence["routers"] == " ".join(routers)


@settings(max_examples=400, deadline=None)
@given(traces())
def test_decide_trace_is_total_and_speaks_the_taxonomy(obs: TraceObservation) -> None:
    verdict = decide_trace(obs)
    assert verdict.verdict in VERDICTS
    assert decide_trace(obs) == verdict
    # Its evidence, and the attempts it was decided from, fit the wire.
    m = measurement(obs, verdict)
    assert decode_measurement(encode_measurement(m)).verdict == verdict


@settings(max_examples=400, deadline=None)
@given(traces())
def test_locate_names_a_ttl_the_trace_sent(obs: TraceObservation) -> None:
    located = locate(obs)
    if located is None:
        return
    censor = located["censor_ttl"]
    assert censor in {a.ttl for a in obs.attempts if a.ttl != t.FULL_TTL}
    assert isinstance(censor, int)
    listed = str(located["routers"]).split(" ")
    assert listed[0] == "..." or len(listed) == censor - 1 or listed == [""]

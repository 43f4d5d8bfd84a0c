"""Collector: a trace as the collector shows it (collector.traces) and says it in words
(collector.explain_trace): the AS of after_hop, the routers hidden publicly, the table rows,
and a sentence for every verdict a trace can have."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.model.measurement import Target
from agent.model.trace import FULL_TTL
from agent.verdict.trace import REACTION_VERDICTS
from agent.wire.json import measurement_json
from collector.enrich import Network
from collector.explain import EXPLAINED, explain
from collector.traces import HIDDEN, hidden, hop_rows, shown
from tests.collector.traces import AFTER, CPE, ISP, trace_measurement, trace_observation

NETWORKS = {AFTER: Network(64500, "Example", "PK"), ISP: Network(64501, None, "PK")}


def lookup(address: str) -> Network:
    return NETWORKS.get(address, Network())


def _obj(routers: tuple[str, ...] = (CPE, ISP, AFTER)) -> dict[str, Any]:
    m = trace_measurement(trace_observation(routers))
    return json.loads(measurement_json(Target.parse(m.url), m))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("router", "ttl", "hide"),
    [
        (CPE, 1, True),  # the customer's own router, however public its address
        (CPE, 2, False),
        (ISP, 3, True),  # shared address space (100.64.0.0/10)
        ("10.1.2.3", 5, True),
        ("192.168.1.1", 2, True),
        ("169.254.0.1", 4, True),
        ("fe80::1", 3, True),
        ("fd00::1", 3, True),
        (AFTER, 3, False),
        ("2001:db8::1", 2, False),
    ],
)
def test_which_routers_a_public_view_hides(router: str, ttl: int, hide: bool) -> None:
    assert hidden(router, ttl) is hide


def test_the_operator_sees_every_router_and_the_as_of_after_hop() -> None:
    obj = _obj()
    full = shown(obj, operator=True, lookup=lookup)
    assert full["evidence"] == obj["evidence"] | {
        "after_hop_asn": 64500,
        "after_hop_as_name": "Example",
    }
    assert full["trace"] == obj["trace"]
    assert "after_hop_asn" not in obj["evidence"]  # the given object is left as it was


def test_the_public_sees_no_router_that_could_point_at_the_agent() -> None:
    public = shown(_obj(), operator=False, lookup=lookup)
    evidence = public["evidence"]
    assert evidence["routers"] == f"* * {AFTER}"
    assert (evidence["after_hop"], evidence["after_hop_asn"]) == (AFTER, 64500)
    assert CPE not in json.dumps(public)
    assert ISP not in json.dumps(public)
    routers = {a["ttl"]: a["router"] for a in public["trace"]["attempts"]}
    assert routers == {1: HIDDEN, 2: HIDDEN, 3: AFTER, 4: "198.51.100.250", FULL_TTL: None}


def test_a_hidden_after_hop_keeps_its_as() -> None:
    public = shown(_obj((CPE, ISP)), operator=False, lookup=lookup)["evidence"]
    assert (public["after_hop"], public["routers"], public["after_hop_asn"]) == (
        HIDDEN,
        "* *",
        64501,
    )
    assert "after_hop_as_name" not in public  # the database has no name for it


def test_the_routers_own_address_is_hidden_wherever_it_shows_up() -> None:
    """A customer's router at TTL 1 with a public address that answers again higher up (a
    loop, or an unreachable from it) is still the customer's."""
    obj = _obj((CPE, AFTER, CPE))
    public = shown(obj, operator=False)
    assert CPE not in json.dumps(public)
    assert public["evidence"]["after_hop"] == HIDDEN
    assert public["evidence"]["routers"] == f"* {AFTER} *"


def test_evidence_that_does_not_hold_together_hides_after_hop() -> None:
    obj = _obj()
    obj["evidence"]["routers"] = "* *"
    assert shown(obj, operator=False)["evidence"]["after_hop"] == HIDDEN


def test_anything_but_a_trace_is_left_alone() -> None:
    obj = {"verdict": "tls.reset", "evidence": {"after_hop": "10.0.0.1"}, "trace": None}
    assert shown(obj, operator=False, lookup=lookup) is obj


def test_the_table_has_a_row_per_ttl() -> None:
    m = trace_measurement()
    assert m.trace is not None
    rows = hop_rows(m.trace, m.verdict.evidence["censor_ttl"], operator=False)
    assert [(r.ttl, r.router, r.trigger, r.benign, r.censor) for r in rows] == [
        (1, HIDDEN, "exceeded", "exceeded", False),
        (2, HIDDEN, "exceeded", "exceeded", False),
        (3, AFTER, "exceeded", "exceeded", False),
        (4, "198.51.100.250", "rst", "exceeded", True),
        (FULL_TTL, "", "rst", "-", False),
    ]
    operator = hop_rows(m.trace, 4, operator=True)
    assert [r.router for r in operator][:2] == [CPE, ISP]


def _explained(verdict: str, evidence: dict[str, Any]) -> str:
    obj = {"url": "https://blocked.example/", "verdict": verdict, "evidence": evidence,
           "trace": {"trigger": evidence.get("trigger", "sni")}}  # fmt: skip
    return explain(obj)


def test_a_located_in_path_censor_in_words() -> None:
    evidence = shown(_obj(), operator=False, lookup=lookup)["evidence"]
    words = _explained("tls.reset", evidence)
    assert words == (
        "blocked.example: a TLS ClientHello naming it, sent with the normal TTL, was reset; "
        f"a trace located it: the censor reacted at hop 4 with a reset, after router {AFTER} "
        "(AS 64500 Example); the injected reset carried IP TTL 62 where the server's packets "
        "carry 60: an in-path box, since the server's own answer never came."
    )


def test_a_hidden_router_and_an_on_path_box_in_words() -> None:
    evidence = shown(_obj((CPE, ISP)), operator=False, lookup=lookup)["evidence"]
    words = _explained("tls.reset", evidence | {"path": "on"})
    assert "after a router of the agent's own or a private network (not shown; AS 64501)" in words
    assert "an on-path box, since the server's own answer still arrived after it" in words
    assert CPE not in words
    assert ISP not in words


# A trace's verdicts (agent.verdict.trace) and a phrase each explanation must hold.
# fmt: off
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("ok", {"trigger": "host"}, "an HTTP request naming it with growing TTLs"),
    ("inconclusive", {"reason": "not run", "failure": "trace_unavailable"},
     "could not run here (trace_unavailable)"),
    ("inconclusive", {"reason": "no connection", "trigger": "sni"},
     "could not open the connection that carries a TLS ClientHello naming it"),
    ("inconclusive", {"trigger": "ip", "censor_ttl": 3, "routers": "* *", "reaction": "none",
                      "reason": "located, but the last attempt went through"},
     "at hop 3 with silence, and no router below it answered"),
    ("tcp.timeout", {"trigger": "ip", "reason": "not located"}, "could not locate the censor"),
    ("tcp.refused", {"trigger": "ip", "censor_ttl": 2, "path": "in"},
     "was refused with a reset; a trace located it: the censor reacted at hop 2, and no router "
     "below it answered; the injected packet was not captured"),
    ("http.blockpage", {"trigger": "host", "censor_ttl": 5, "after_hop": AFTER,
                        "path": "on", "injected": "data ttl=250 id=1", "injected_ttl": 250},
     "the injected answer carried IP TTL 250: an on-path box"),
    ("http.timeout", {"trigger": "host", "censor_ttl": 2, "path": "in"},
     "nothing came back: an in-path box dropped the trigger there"),
    ("tls.eof", {"trigger": "sni", "censor_ttl": 2}, "was closed right after it was sent"),
]
# fmt: on


@pytest.mark.parametrize(("verdict", "evidence", "phrase"), CASES)
def test_every_trace_verdict_in_words(verdict: str, evidence: dict[str, Any], phrase: str) -> None:
    words = _explained(verdict, evidence)
    assert phrase in words, words


def test_every_verdict_a_trace_can_reach_is_explained() -> None:
    names = {*REACTION_VERDICTS.values(), "http.blockpage", "ok", "inconclusive"}
    assert names <= EXPLAINED
    for name in names:
        words = _explained(name, {"trigger": "sni", "censor_ttl": 3})
        assert "not explained" not in words, words
        assert "met " not in words, words

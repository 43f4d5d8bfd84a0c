"""Collector: every verdict explained in words (collector.explain), from its evidence."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest

from agent.model.measurement import Target
from agent.model.verdicts import VERDICTS
from agent.wire.json import measurement_obj
from agent.wire.record import measurement_from_obj
from collector.explain import EXPLAINED, TECHNIQUES, explain, technique
from tests.agent.observations import RECORDED

# Evidence as agent.verdict gives it, per verdict (docs/design/002-verdicts.md), and a
# phrase of the explanation that says what that evidence means.
# fmt: off
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "ok": ({}, "reachable"),
    "down": ({"failure": "connection_refused", "control_failure": "connection_refused"},
             "the control failed the same way"),
    "offline": ({}, "offline"),
    "inconclusive": ({"failure": "connection_refused", "reason": "no control to compare with"},
                     "no conclusion"),
    "dns.nxdomain": ({"trigger": "resolver", "failure": "dns_nxdomain_error"}, "does not exist"),
    "dns.servfail": ({"trigger": "resolver", "failure": "dns_server_failure"}, "SERVFAIL"),
    "dns.refused": ({"trigger": "resolver", "failure": "dns_refused_error"}, "refused"),
    "dns.timeout": ({"trigger": "resolver", "failure": "generic_timeout_error"}, "in time"),
    "dns.bogon": ({"trigger": "resolver", "addresses": "10.10.34.34"}, "10.10.34.34"),
    "dns.mismatch": ({"trigger": "resolver", "addresses": "203.0.113.80", "ip": "203.0.113.80",
                      "fingerprint": "cp.b_nat_pak_isp_common_blockpage"},
                     "cp.b_nat_pak_isp_common_blockpage"),
    "dns.injected": ({"ip": "198.51.100.8", "injected_answers": "203.0.113.66", "ttl_diff": 1},
                     "forged reply gave 203.0.113.66"),
    "tcp.timeout": ({"failure": "generic_timeout_error", "ip": "192.0.2.18", "trigger": "ip"},
                    "to 192.0.2.18 timed out"),
    "tcp.reset": ({"failure": "connection_reset", "ip": "192.0.2.18", "trigger": "ip"},
                  "was reset"),
    "tcp.refused": ({"failure": "connection_refused", "ip": "192.0.2.19", "trigger": "ip"},
                    "was refused"),
    "tls.reset": ({"failure": "connection_reset", "ip": "192.0.2.20", "trigger": "sni"},
                  "benign name succeeded"),
    "tls.timeout": ({"failure": "generic_timeout_error", "ip": "192.0.2.21", "trigger": "ip"},
                    "benign name failed too"),
    "tls.eof": ({"failure": "eof_error", "ip": "192.0.2.21", "trigger": "sni"},
                "closed without an answer"),
    "tls.mitm": ({"ip": "192.0.2.25", "issuer": "Lab interceptor",
                  "reason": "ssl_unknown_authority"}, "issued by Lab interceptor"),
    "http.reset": ({"failure": "connection_reset", "ip": "192.0.2.22", "trigger": "host"},
                   "benign Host name got a clean answer"),
    "http.timeout": ({"failure": "generic_timeout_error", "ip": "192.0.2.23", "trigger": "ip"},
                     "benign Host name failed too"),
    "http.eof": ({"failure": "eof_error", "ip": "192.0.2.23"}, "closed without an answer"),
    "http.blockpage": ({"ip": "192.0.2.24", "reason": "differs from control"},
                       "status, title and length"),
    "http.diff": ({"ip": "192.0.2.24", "reason": "title differs from control"},
                  "title differs from the control's"),
    "throttled": ({"trigger": "sni", "direction": "down", "limit_kbps": 140, "benign_kbps": 9000},
                  "at about 140 kbit/s against 9000 kbit/s"),
    "quic.blocked": ({"trigger": "sni", "where": "the far end", "name": "x.com"},
                     "QUIC packets naming it were lost"),
    "vpn.blocked": ({"trigger": "wireguard"}, "(wireguard) were lost"),
}
# fmt: on


def measurement(verdict: str, evidence: dict[str, Any], *, control: bool = True) -> dict[str, Any]:
    return {
        "target": "https://x.com/",
        "url": "https://x.com/",
        "verdict": verdict,
        "evidence": evidence,
        "agent": {"dns": {}, "endpoints": []},
        "control": {"dns": {}, "endpoints": []} if control else None,
        "control_failure": None if control else "no_control",
    }


def test_every_verdict_name_has_an_explanation() -> None:
    assert VERDICTS == EXPLAINED, "a verdict name without words in collector/explain.py"
    assert set(CASES) == VERDICTS, "a verdict name without a case here"
    assert set(TECHNIQUES) == VERDICTS, "a verdict name without a few words"


def test_techniques_are_words_not_names() -> None:
    assert technique("tls.reset") == "TLS handshakes reset"
    assert technique("throttled") == "throttling by name"
    assert technique("future.verdict") == "future.verdict"
    assert all("." not in words for words in TECHNIQUES.values())


@pytest.mark.parametrize("verdict", sorted(VERDICTS))
def test_each_verdict_is_said_in_words_from_its_evidence(verdict: str) -> None:
    evidence, phrase = CASES[verdict]
    text = explain(measurement(verdict, evidence))
    assert text.startswith("x.com: ")
    assert text.endswith(".")
    assert phrase in text
    assert "not explained" not in text
    if "." in verdict:
        assert verdict not in text  # words, not the taxonomy's name


def test_the_issue_example_reads_as_it_does() -> None:
    evidence = {"failure": "connection_reset", "ip": "192.0.2.20", "trigger": "sni"}
    assert explain(measurement("tls.reset", evidence)) == (
        "x.com: the TLS connection to 192.0.2.20 was reset after the ClientHello; the same "
        "handshake with a benign name succeeded, so the name (SNI) is what is blocked; the "
        "control completed it."
    )


def test_without_a_control_it_says_the_agent_alone_saw_it() -> None:
    evidence = {"failure": "connection_reset", "ip": "192.0.2.20", "trigger": "sni"}
    text = explain(measurement("tls.reset", evidence, control=False))
    assert "no control measurement (no_control)" in text
    assert "the control completed it" not in text


def test_a_verdict_it_does_not_know_and_odd_input_still_give_a_sentence() -> None:
    assert "not explained in words yet" in explain({"url": "https://x.com/", "verdict": "new.x"})
    assert explain({}) == "this site: verdict unknown, not explained in words yet."
    odd = {"url": 5, "verdict": "tls.reset", "evidence": ["not", "a", "dict"], "control": 1}
    assert explain(odd).startswith("this site: the TLS connection ")
    long = explain(measurement("dns.bogon", {"addresses": "1" * 10_000}))
    assert len(long) < 400


@pytest.mark.parametrize("name", ["with-control", "without-control"])
def test_the_lab_recordings_each_get_their_own_words(name: str) -> None:
    with (RECORDED / f"{name}.msgpack").open("rb") as handle:
        found = [measurement_from_obj(o) for o in msgpack.Unpacker(handle, raw=False)]
    assert found
    for m in found:
        obj = json.loads(json.dumps(measurement_obj(Target.parse(m.url), m), default=str))
        text = explain(obj)
        assert text.startswith(f"{Target.parse(m.url).host}: "), text
        assert "not explained" not in text
        for key in ("ip", "fingerprint", "addresses", "injected_answers"):
            if key in m.verdict.evidence:
                assert str(m.verdict.evidence[key]) in text, (key, text)

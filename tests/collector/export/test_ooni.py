"""The OONI rendering (collector.export.ooni), pure: the lab's recorded measurements, one of
every verdict the lab shows, against the base data format and Web Connectivity's test keys
(ooni/spec df-000-base, df-001-httpt, df-002-dnst, df-005-tcpconnect, df-006-tlshandshake,
ts-017-web-connectivity)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from agent.model.measurement import SiteMeasurement, Vantage
from agent.model.verdicts import VERDICTS
from agent.wire.record import encode_measurement
from collector.export.ooni import (
    BASE_KEYS,
    blocking_of,
    http_matches,
    ooni_measurement,
    ooni_undecodable,
)
from collector.storage.queries import StoredMeasurement
from tests.agent.observations import endpoint, page, vantage
from tests.collector.storage.records import recorded

AGENT_ID = "ag-0123456789ab"
BLOCKING = {"dns": "dns", "tcp": "tcp_ip", "tls": "http-failure", "http": "http-failure"}
START_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def row_of(m: SiteMeasurement, asn: int | None = 64500, cc: str | None = "PK") -> StoredMeasurement:
    return StoredMeasurement(
        m.id,
        m.started_ms,
        m.started_ms + 60_000,
        AGENT_ID,
        asn,
        cc,
        m.verdict.verdict,
        encode_measurement(m),
    )


def by_verdict(verdict: str) -> SiteMeasurement:
    """A recorded single-URL measurement with ``verdict``, its IPv4 endpoints only: the cases
    below read one endpoint's operations (dual-stack ones have a test of their own)."""
    m = next(
        m
        for m in recorded()
        if m.verdict.verdict == verdict and not m.hops and m.verdict.evidence.get("family") != "6"
    )
    return replace(m, agent=_ipv4(m.agent), control=_ipv4(m.control) if m.control else None)


def _ipv4(view: Vantage) -> Vantage:
    return replace(view, endpoints=tuple(e for e in view.endpoints if ":" not in e.ip))


def rendered(m: SiteMeasurement, **kwargs: Any) -> dict[str, Any]:
    obj = ooni_measurement(row_of(m), m, **kwargs)
    # JSON as it is sent: strict, no NaN, and back to what a reader gets.
    loaded: dict[str, Any] = json.loads(json.dumps(obj, allow_nan=False))
    return loaded


@pytest.mark.parametrize("m", recorded(), ids=lambda m: m.verdict.verdict)
def test_base_keys_as_the_spec_has_them(m: SiteMeasurement) -> None:
    out = rendered(m)
    assert set(BASE_KEYS) <= out.keys()
    assert out["test_name"] == "web_connectivity"
    assert out["software_name"] == "netsonde"
    assert out["data_format_version"] == "0.2.0"
    assert out["input"] == m.url
    assert out["probe_asn"] == "AS64500"
    assert out["probe_cc"] == "PK"
    assert START_TIME.fullmatch(out["measurement_start_time"])
    assert START_TIME.fullmatch(out["test_start_time"])
    assert out["test_runtime"] == pytest.approx(m.ms / 1000)
    assert out["id"] == m.id
    assert re.fullmatch(r"\d{8}T\d{6}Z_webconnectivity_PK_64500_n1_[0-9a-f]{16}", out["report_id"])
    for key in ("test_version", "software_version"):
        assert isinstance(out[key], str)
    assert isinstance(out["annotations"], dict)
    assert isinstance(out["test_keys"], dict)


@pytest.mark.parametrize("m", recorded(), ids=lambda m: m.verdict.verdict)
def test_never_the_probe_address_and_the_agent_only_for_the_operator(m: SiteMeasurement) -> None:
    public = rendered(m)
    assert "probe_ip" not in public
    assert AGENT_ID not in json.dumps(public)
    operator = rendered(m, operator=True)
    assert operator["annotations"]["netsonde_agent_id"] == AGENT_ID
    del operator["annotations"]["netsonde_agent_id"]
    assert operator == public


def test_unknown_network_is_as0_and_zz() -> None:
    m = by_verdict("ok")
    out = ooni_measurement(row_of(m, None, None), m)
    assert out["probe_asn"] == "AS0"
    assert out["probe_cc"] == "ZZ"


@pytest.mark.parametrize("m", recorded(), ids=lambda m: m.verdict.verdict)
def test_blocking_accessible_and_dns_consistency_follow_the_verdict(m: SiteMeasurement) -> None:
    keys = rendered(m)["test_keys"]
    verdict = m.verdict.verdict
    expected = {
        "ok": (False, True),
        "down": (False, False),
        "offline": (None, None),
        "http.blockpage": ("http-diff", False),
        "http.diff": ("http-diff", False),
    }.get(verdict, (BLOCKING.get(verdict.split(".")[0]), False))
    assert (keys["blocking"], keys["accessible"]) == expected
    assert keys["dns_consistency"] == (
        "inconsistent" if verdict.startswith("dns.") else "consistent" if m.control else None
    )
    assert keys["x_netsonde"]["verdict"] == verdict
    assert keys["x_netsonde"]["evidence"] == m.verdict.evidence


@pytest.mark.parametrize("verdict", sorted(VERDICTS))
def test_every_verdict_has_web_connectivitys_values(verdict: str) -> None:
    blocking, accessible = blocking_of(verdict)
    assert blocking in (None, False, "dns", "tcp_ip", "http-failure", "http-diff")
    assert accessible is (None if blocking is None else blocking is False and verdict == "ok")


@pytest.mark.parametrize("m", recorded(), ids=lambda m: m.verdict.verdict)
def test_network_operations_in_ooni_data_formats(m: SiteMeasurement) -> None:
    keys = rendered(m)["test_keys"]
    assert keys["client_resolver"] == m.agent.dns.system.server
    assert len(keys["queries"]) == 1 + len(m.agent.dns.public)
    for query in keys["queries"]:
        assert {
            "hostname",
            "query_type",
            "failure",
            "answers",
            "engine",
            "resolver_address",
            "t0",
            "t",
            "transaction_id",
        } <= query.keys()
        assert query["hostname"] == m.agent.dns.system.name
        assert 0 <= query["t0"] <= query["t"]
        for answer in query["answers"]:
            assert answer["answer_type"] in ("A", "AAAA")
    assert keys["dns_experiment_failure"] == m.agent.dns.system.failure
    assert len(keys["tcp_connect"]) == len(m.agent.endpoints)
    for entry, e in zip(keys["tcp_connect"], m.agent.endpoints, strict=True):
        assert (entry["ip"], entry["port"]) == (e.ip, e.port)
        assert entry["status"] == {"failure": e.tcp.failure, "success": e.tcp.failure is None}
        assert entry["t0"] <= entry["t"]
    for handshake in keys["tls_handshakes"]:
        assert {
            "address",
            "server_name",
            "tls_version",
            "cipher_suite",
            "failure",
            "negotiated_protocol",
            "no_tls_verify",
            "peer_certificates",
            "t0",
            "t",
        } <= handshake.keys()
    for request in keys["requests"]:
        assert request["request"]["method"] == "GET"
        assert request["request"]["url"].endswith("/")
        assert isinstance(request["response"]["code"], int)
        assert isinstance(request["response"]["headers"], dict)
        assert request["t0"] <= request["t"]
    control = keys["control"]
    assert (control is None) == (m.control is None)
    if control is not None and m.control is not None:
        assert {"tcp_connect", "tls_handshake", "http_request", "dns"} <= control.keys()
        assert control["dns"]["addrs"] == list(m.control.dns.system.addresses)


def test_tls_reset_shows_the_reset_handshake() -> None:
    m = by_verdict("tls.reset")
    keys = rendered(m)["test_keys"]
    handshake, benign = keys["tls_handshakes"]
    assert handshake["failure"] == "connection_reset"
    assert handshake["server_name"] == "x.com"
    assert handshake["tags"] == ["classic", "depth=0"]
    # The same endpoint with a benign name completed: the SNI is what was blocked.
    assert benign["failure"] is None
    assert benign["server_name"] != "x.com"
    assert "netsonde_benign_sni" in benign["tags"]
    assert handshake["t"] <= benign["t0"]
    assert keys["http_experiment_failure"] == "connection_reset"
    assert keys["requests"] == []


def test_tls_interception_is_a_failed_certificate() -> None:
    keys = rendered(by_verdict("tls.mitm"))["test_keys"]
    assert keys["tls_handshakes"][0]["failure"] == "ssl_unknown_authority"


def test_tcp_timeout_is_a_failed_connect() -> None:
    keys = rendered(by_verdict("tcp.timeout"))["test_keys"]
    [connect] = keys["tcp_connect"]
    assert connect["status"] == {"failure": "generic_timeout_error", "success": False}
    assert keys["http_experiment_failure"] == "generic_timeout_error"
    assert keys["blocking"] == "tcp_ip"


def test_dns_injection_keeps_every_reply() -> None:
    m = by_verdict("dns.injected")
    keys = rendered(m)["test_keys"]
    [public] = m.agent.dns.public
    assert len(keys["x_dns_duplicate_responses"]) == len(public.replies) - 1
    first = keys["queries"][1]
    assert first["resolver_address"] == f"{public.server}:53"
    assert [a["ipv4"] for a in first["answers"]] == list(public.replies[0].addresses)


def test_http_blockpage_and_host_reset_show_both_requests() -> None:
    blockpage = rendered(by_verdict("http.blockpage"))["test_keys"]
    real, benign = blockpage["requests"]
    assert real["response"]["x_netsonde_fingerprint"] == "cp.b_nat_pak_isp_common_blockpage"
    assert "netsonde_benign_host" in benign["tags"]
    assert real["request"]["url"] == "http://ahmadiyya.org/"
    reset = rendered(by_verdict("http.reset"))["test_keys"]
    assert reset["requests"][0]["failure"] == "connection_reset"
    assert reset["requests"][0]["response"]["code"] == 0
    assert reset["http_experiment_failure"] == "connection_reset"
    assert reset["blocking"] == "http-failure"


def _with_pages(probe: int | None, control: int | None, **kw: Any) -> SiteMeasurement:
    m = by_verdict("ok")
    agent_page = page(probe, body_length=kw.get("probe_len", 5000), title=kw.get("title"))
    control_page = page(
        control, body_length=kw.get("control_len", 5000), title="Wikipedia, the free encyclopedia"
    )
    return replace(
        m,
        agent=vantage(endpoints=(endpoint(http=agent_page),)),
        control=vantage(endpoints=(endpoint(http=control_page),)),
    )


def test_http_matches_follow_the_spec() -> None:
    same = http_matches(_with_pages(200, 200, title="Wikipedia, the free encyclopedia"))
    assert same == {
        "body_proportion": 1.0,
        "body_length_match": True,
        "status_code_match": True,
        "title_match": True,
        "headers_match": None,
    }
    blockpage = http_matches(_with_pages(403, 200, probe_len=1000, title="Access denied"))
    assert blockpage["body_proportion"] == pytest.approx(0.2)
    assert blockpage["body_length_match"] is False
    assert blockpage["status_code_match"] is False
    assert blockpage["title_match"] is False
    short = http_matches(_with_pages(200, 200, title="Wiki"))  # no word of 5 letters or more
    assert short["title_match"] is None
    control_failed = http_matches(_with_pages(200, 500, title="Wikipedia"))
    assert control_failed["status_code_match"] is None
    no_response = http_matches(_with_pages(None, 200))
    assert set(no_response.values()) == {None}


def test_undecodable_rows_are_still_exported() -> None:
    m = by_verdict("tls.reset")
    out = ooni_undecodable(row_of(m), "measurement.i: expected 16 bytes of UUID")
    assert set(BASE_KEYS) <= out.keys()
    assert out["input"] is None
    assert out["test_keys"]["blocking"] == "http-failure"
    assert out["test_keys"]["x_netsonde"]["decode_error"].startswith("measurement.i")


def test_a_dual_stack_site_shows_both_families() -> None:
    m = next(r for r in recorded() if any(":" in e.ip for e in r.agent.endpoints))
    connects = rendered(m)["test_keys"]["tcp_connect"]
    assert {c["ip"] for c in connects} >= {e.ip for e in m.agent.endpoints}
    assert any(":" in c["ip"] for c in connects)
    assert any(":" not in c["ip"] for c in connects)

"""Collector export: a measurement as an OONI Web Connectivity measurement. Pure.

The base data format (ooni/spec data-formats/df-000-base.md) around the test keys of Web
Connectivity (nettests/ts-017-web-connectivity.md) that netsonde's observations can fill,
so that OONI's tooling and researchers can read netsonde data. ``blocking`` and
``accessible`` follow from netsonde's verdict (which says more: the verdict itself rides
in ``test_keys.x_netsonde``), ``dns_consistency`` too; the body, status and title matches
are computed as the spec says from the agent's and the control's final responses.

Never the agent: no ``probe_ip`` (OONI publishes it scrubbed to 127.0.0.1; netsonde never
had it in a record to begin with), and the agent id only in an operator's export, as the
``netsonde_agent_id`` annotation. The mapping, and what cannot be filled, is in
docs/design/010-export.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.model.measurement import SiteMeasurement, Target
from collector import __version__
from collector.export.ooni_keys import (
    Transactions,
    control_keys,
    dns_keys,
    endpoint_keys,
    final_response,
)
from collector.storage.queries import StoredMeasurement

__all__ = ["BASE_KEYS", "blocking_of", "http_matches", "ooni_measurement", "ooni_undecodable"]

TEST_NAME = "web_connectivity"
# The version of this rendering of netsonde's measurement as Web Connectivity; OONI's own
# probes are at 0.4 (classic) and 0.5.
TEST_VERSION = "0.1.0"
DATA_FORMAT_VERSION = "0.2.0"
SOFTWARE_NAME = "netsonde"
# The keys oonidata's BaseMeasurement requires, and the spec's base keys besides.
BASE_KEYS = (
    "annotations",
    "data_format_version",
    "extensions",
    "id",
    "input",
    "measurement_start_time",
    "probe_asn",
    "probe_cc",
    "report_id",
    "resolver_ip",
    "software_name",
    "software_version",
    "test_helpers",
    "test_keys",
    "test_name",
    "test_runtime",
    "test_start_time",
    "test_version",
)
_EXTENSIONS = {"dnst": 0, "httpt": 0, "tcpconnect": 0, "tlshandshake": 0}
# Web Connectivity's blocking values by the verdict's layer (docs/design/002-verdicts.md).
_BLOCKING = {"dns": "dns", "tcp": "tcp_ip", "tls": "http-failure", "http": "http-failure"}
_HTTP_DIFF = frozenset(("http.blockpage", "http.diff"))
_TITLE_WORD = 4  # ts-017: words longer than this many characters


def blocking_of(verdict: str) -> tuple[str | bool | None, bool | None]:
    """Web Connectivity's (``blocking``, ``accessible``) for a netsonde verdict."""
    if verdict == "ok":
        return False, True
    if verdict == "down":  # an expected failure: the control could not reach it either
        return False, False
    if verdict in _HTTP_DIFF:
        return "http-diff", False
    layer = _BLOCKING.get(verdict.partition(".")[0])
    return (layer, False) if layer is not None else (None, None)  # offline, inconclusive


def _title_words(title: str | None) -> set[str]:
    return {word for word in (title or "").split() if len(word) > _TITLE_WORD}


def http_matches(m: SiteMeasurement) -> dict[str, Any]:
    """``body_proportion``, ``body_length_match``, ``status_code_match``, ``title_match`` and
    ``headers_match`` of the agent's and the control's final responses, by ts-017's rules."""
    probe, control = final_response(m.agent), final_response(m.control)
    keys: dict[str, Any] = dict.fromkeys(
        (
            "body_proportion",
            "body_length_match",
            "status_code_match",
            "title_match",
            "headers_match",
        ),
    )
    if probe is None or control is None:
        return keys
    if probe.body_length > 0 and control.body_length > 0:
        ratio = probe.body_length / control.body_length
        keys["body_proportion"] = round(min(ratio, 1 / ratio), 6)
        keys["body_length_match"] = keys["body_proportion"] > 0.7
    if control.status is not None and 200 <= control.status < 300:
        keys["status_code_match"] = probe.status == control.status
    words, control_words = _title_words(probe.title), _title_words(control.title)
    if words and control_words:
        keys["title_match"] = bool(words & control_words)
    return keys


def _http_failure(m: SiteMeasurement) -> str | None:
    """Why no final response came: the first endpoint's first failure (TCP, TLS, HTTP)."""
    if final_response(m.agent) is not None or not m.agent.endpoints:
        return None
    e = m.agent.endpoints[0]
    tls = e.tls.failure or e.tls.validation_failure if e.tls is not None else None
    return e.tcp.failure or tls or (e.http.failure if e.http is not None else None)


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _base(row: StoredMeasurement, url: str, started_ms: int, runtime_ms: float) -> dict[str, Any]:
    """The base data format's keys, test keys aside."""
    asn = f"AS{row.asn or 0}"
    cc = row.cc or "ZZ"
    stamp = datetime.fromtimestamp(started_ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")
    return {
        "annotations": {
            "engine_name": SOFTWARE_NAME,
            "engine_version": __version__,
            "platform": "linux",
            "netsonde_verdict": row.verdict,
        },
        "data_format_version": DATA_FORMAT_VERSION,
        "extensions": dict(_EXTENSIONS),
        "id": row.id,
        "input": url,
        "measurement_start_time": _time(started_ms),
        "probe_asn": asn,
        "probe_cc": cc,
        # Per measurement, so that nothing groups one agent's measurements together.
        "report_id": f"{stamp}_webconnectivity_{cc}_{asn[2:]}_n1_{row.id.replace('-', '')[16:]}",
        "resolver_ip": None,
        "software_name": SOFTWARE_NAME,
        "software_version": __version__,
        "test_helpers": {},
        "test_keys": {},
        "test_name": TEST_NAME,
        "test_runtime": round(runtime_ms / 1000, 6),
        "test_start_time": _time(started_ms),
        "test_version": TEST_VERSION,
    }


def ooni_measurement(
    row: StoredMeasurement, m: SiteMeasurement, *, operator: bool = False
) -> dict[str, Any]:
    """The stored measurement ``row`` (``m`` its decoded record) in OONI's format."""
    out = _base(row, m.url, m.started_ms, m.ms)
    system = m.agent.dns.system
    out["resolver_ip"] = system.server
    if m.control is not None:
        out["test_helpers"] = {"backend": {"address": "netsonde collector", "type": "netsonde"}}
    if operator:
        out["annotations"]["netsonde_agent_id"] = row.agent_id
    ids = Transactions()
    queries, duplicates, dns_end = dns_keys(m.agent.dns, ids)
    blocking, accessible = blocking_of(row.verdict)
    consistency = "inconsistent" if row.verdict.startswith("dns.") else None
    if consistency is None and m.control is not None:
        consistency = "consistent"
    out["test_keys"] = {
        "agent": "agent",  # netsonde does not follow redirects: Location is evidence
        "client_resolver": system.server,
        "retries": None,
        "socksproxy": None,
        "queries": queries,
        "x_dns_duplicate_responses": duplicates,
        **endpoint_keys(m.agent, Target.parse(m.url).scheme, dns_end, ids),
        "control": None if m.control is None else control_keys(m.control),
        "control_failure": m.control_failure,
        "dns_experiment_failure": system.failure,
        "dns_consistency": consistency,
        "http_experiment_failure": _http_failure(m),
        **http_matches(m),
        "blocking": blocking,
        "accessible": accessible,
        "x_netsonde": {
            "verdict": row.verdict,
            "evidence": dict(m.verdict.evidence),
            "online": m.online,
        },
    }
    return out


def ooni_undecodable(row: StoredMeasurement, error: str) -> dict[str, Any]:
    """A row whose record the current decoder refuses: still exported, with what the store
    knows, so the export has every row."""
    out = _base(row, "", row.measured_ms, 0.0)
    out["input"] = None
    blocking, accessible = blocking_of(row.verdict)
    out["test_keys"] = {
        "blocking": blocking,
        "accessible": accessible,
        "x_netsonde": {"verdict": row.verdict, "decode_error": error},
    }
    return out

"""Reports (collector.reports) on constructed data in real SQLite and PostgreSQL: what a report
holds, counts that match the measurements and the evidence bundle, escaping, and a page
that loads nothing."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import re

from sqlalchemy import func, select

from agent.model.measurement import Verdict
from collector.evidence.bundle import build_bundle, bundle_id
from collector.evidence.key import Ed25519PrivateKey
from collector.evidence.query import EvidenceQuery, parse_query
from collector.incidents import detect
from collector.reports import REPORT_HEADERS, gather, incident_query, render, report_html
from collector.reports.data import whole_hours
from collector.storage import Storage
from collector.storage.schema import measurements
from collector.thresholds import Thresholds
from tests.collector.incidents.stored import HOUR, T0, Filler, measured
from tests.collector.storage.records import ingest_records

DAY = 24 * HOUR
# Not on hours: the report widens the period to whole hours.
QUERY = parse_query("x.com", [], T0 - HOUR + 1234, T0 + 3 * DAY - 99)


def lab_like(storage: Storage) -> None:
    """x.com blocked on two networks, dawn.com clean, an outage: as the lab and fill_store."""
    fill = Filler(storage)
    for day in range(3):
        at = T0 + day * DAY
        fill.add("tls.reset tls.reset tls.reset ok offline", "x.com", at, agent="agent-a")
        fill.add("dns.nxdomain " * 3, "x.com", at, asn=64501, cc="IN", agent="agent-b")
        fill.add("ok ok ok", "dawn.com", at, agent="agent-a")
    fill.checks("agent-a", "++---+", T0)


def text_of(html: str) -> str:
    """The page's text, as a reader sees it (tags gone, entities read)."""
    import html as html_module

    return html_module.unescape(re.sub(r"<[^>]+>", "", html))


def test_a_report_holds_summary_chart_incidents_explanations_and_the_bundle_id(
    storage: Storage,
) -> None:
    lab_like(storage)
    page = report_html(storage, QUERY, Thresholds()).decode()
    text = " ".join(text_of(page).split())
    assert (
        "x.com was blocked on AS64500 (PK) and AS64501 (IN) from Wed 15 Nov 2023 00:00 UTC" in text
    )
    assert "by false 'no such name' DNS answers (dns.nxdomain) and TLS handshakes reset" in text
    assert "18 of the 24 measurements made by 2 agents showed it." in text
    assert page.count("<svg") == 1
    assert 'role="img"' in page
    data = gather(storage, QUERY, Thresholds())
    for example in data.examples:
        assert " ".join(example.explanation.split()) in text
    assert {e.verdict for e in data.examples} == {"tls.reset", "dns.nxdomain"}
    assert "the control completed it" in text
    assert bundle_id(storage, whole_hours(QUERY)) in page
    assert "Outages on these networks" in text
    assert "Method and limits" in text
    assert "at least 3 blocking measurements, at least 50%" in text


def test_counts_match_the_measurements_table_and_the_evidence_bundle(storage: Storage) -> None:
    lab_like(storage)
    data = gather(storage, QUERY, Thresholds())
    q = whole_hours(QUERY)
    assert (q.since_ms, q.until_ms) == (T0 - HOUR, T0 + 3 * DAY)
    m = measurements.c
    counted = (
        select(m.verdict, func.count())
        .where(m.domain == "x.com", m.measured_ms >= q.since_ms, m.measured_ms < q.until_ms)
        .group_by(m.verdict)
    )
    with storage.engine.connect() as conn:
        assert data.counts == {v: int(n) for v, n in conn.execute(counted)}
    assert (data.total, data.blocking, data.agents) == (24, 18, 2)
    assert {n.asn: n.counts for n in data.networks} == {
        64500: {"offline": 3, "ok": 3, "tls.reset": 9},
        64501: {"dns.nxdomain": 9},
    }
    built = build_bundle(storage, q, Ed25519PrivateKey.generate(), io.BytesIO())
    assert built.bundle_id == data.bundle_id
    assert built.summary["by_verdict"] == data.counts
    assert built.summary["agents"] == data.agents


def test_a_report_on_one_network_counts_only_that_network(storage: Storage) -> None:
    lab_like(storage)
    one = EvidenceQuery("x.com", (64501,), QUERY.since_ms, QUERY.until_ms)
    data = gather(storage, one, Thresholds())
    assert (data.counts, data.agents, data.techniques) == ({"dns.nxdomain": 9}, 1, ["dns.nxdomain"])
    assert [i.asns for i in data.incidents] == [(64501,)]  # its part of the incident
    assert data.outages == []  # the outage was on AS64500


def test_a_clean_site_and_an_empty_period_say_so(storage: Storage) -> None:
    lab_like(storage)
    clean = EvidenceQuery("dawn.com", (), QUERY.since_ms, QUERY.until_ms)
    text = " ".join(text_of(report_html(storage, clean, Thresholds()).decode()).split())
    assert "dawn.com was reachable on every network between" in text
    assert "none of 9 measurements showed blocking" in text
    assert "No incident" in text
    empty = EvidenceQuery("x.com", (), T0 + 30 * DAY, T0 + 31 * DAY)
    text = text_of(report_html(storage, empty, Thresholds()).decode())
    assert "No measurements of x.com on every network between" in text


def test_a_report_for_every_domain_lists_the_most_blocked(storage: Storage) -> None:
    lab_like(storage)
    every = EvidenceQuery(None, (), QUERY.since_ms, QUERY.until_ms)
    data = gather(storage, every, Thresholds())
    assert data.domains == [("x.com", 18, 24)]
    assert "The measured domains were blocked" in render(data)


def test_an_incident_has_its_report(storage: Storage) -> None:
    lab_like(storage)
    (incident,) = [i for i in detect(storage, T0 - DAY, T0 + 7 * DAY) if i.domain == "x.com"]
    data = gather(storage, incident_query(incident), Thresholds())
    assert data.query.asns == (64500, 64501)
    assert data.blocking == incident.blocking
    assert data.incidents[0].start_ms == incident.start_ms


def test_hostile_evidence_is_escaped(storage: Storage) -> None:
    hostile = "<script>alert(1)</script>&<img src=x onerror=alert(2)>"
    m = measured("tls.mitm", "x.com", T0)
    evidence = {"ip": "192.0.2.25", "issuer": hostile, "reason": "ssl_unknown_authority"}
    m = dataclasses.replace(m, verdict=Verdict("tls.mitm", evidence))
    storage.add_agent("agent-z", "z", b"z" * 32, 0)
    storage.ingest("agent-z", ingest_records([m]), 64500, "PK", T0 + HOUR)
    page = report_html(storage, QUERY, Thresholds(min_blocking=1)).decode()
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&lt;img src=x" in page
    assert hostile in text_of(page)


def test_the_page_loads_nothing_and_its_csp_allows_only_its_own_style(storage: Storage) -> None:
    lab_like(storage)
    page = report_html(storage, QUERY, Thresholds()).decode()
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page)
    assert not re.search(r"\s(src|href)=", page)
    assert re.findall(r"https?://[^\s\"'<>]+", page) == ["http://www.w3.org/2000/svg"]
    assert "url(" not in page
    assert "@media print" in page
    assert "@page" in page
    (style,) = re.findall(r"<style>(.*?)</style>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in REPORT_HEADERS["Content-Security-Policy"]
    assert "default-src 'none'" in REPORT_HEADERS["Content-Security-Policy"]


def test_the_same_data_gives_the_same_bytes(storage: Storage) -> None:
    lab_like(storage)
    assert report_html(storage, QUERY, Thresholds()) == report_html(storage, QUERY, Thresholds())

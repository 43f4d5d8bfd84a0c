"""The dashboard in Debian's chromium, on the lab's data from the real agent and collector:
every view renders what the scenario table expects, a report prints to PDF, no request leaves
the collector's origin (chromium's own network log), and agent health needs the operator's
login. With NETSONDE_SCREENSHOTS=DIR each view is saved there (docs/screenshots)."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from agent import __version__
from collector.dashboard.charts import OUTAGE_COLOURS, verdict_colour
from collector.storage.blocking import NOT_BLOCKING
from tests.browser import chromium
from tests.browser.lab_site import LAB_ASN, LAB_CC, LabSite

pytestmark = [pytest.mark.lab, pytest.mark.browser]

NETWORK = f"AS{LAB_ASN} {LAB_CC}"


def visit(driver: Any, site: LabSite, path: str) -> None:
    """Opens ``path`` and checks that every request the page made went to the collector."""
    chromium.requests(driver)  # what came before is another page's
    driver.get(site.url + path)
    urls = chromium.requests(driver)
    assert urls, "chromium's network log is empty"
    foreign = [url for url in urls if not url.startswith(site.url + "/")]
    assert foreign == [], f"{path} made requests off the collector's origin"


def arrived(driver: Any, url: str) -> None:
    """Waits for a click's navigation to land on ``url`` (a click returns before it does)."""
    WebDriverWait(driver, 15).until(expected_conditions.url_to_be(url))
    WebDriverWait(driver, 15).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def texts(driver: Any, selector: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)]


def matrix(driver: Any) -> dict[str, dict[str, tuple[str, str]]]:
    """The matrix on the page: {domain: {network: (cell class, cell text)}}."""
    networks = texts(driver, "table.matrix thead th")[1:]
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "table.matrix tbody tr"):
        domain = row.find_element(By.CSS_SELECTOR, "th").text
        cells = row.find_elements(By.CSS_SELECTOR, "td")
        out[domain] = {
            network: (cell.get_attribute("class"), cell.text)
            for network, cell in zip(networks, cells, strict=True)
        }
    return out


def blocked_rows(site: LabSite) -> list[Any]:
    return [row for row in site.rows if row.expected not in NOT_BLOCKING]


def test_the_overview_shows_the_lab(driver: Any, site: LabSite, screenshots: str | None) -> None:
    visit(driver, site, "/?days=1")
    assert driver.find_element(By.TAG_NAME, "h1").text == "What this collector's agents see"
    # Each figure is "<b>N</b> label": {label: N}.
    stats = {label: n for n, _, label in (s.partition("\n") for s in texts(driver, "ul.stats li"))}
    # The daemon is online; the probe identity the control asks for never checks in.
    assert stats["agents online"] == "1 of 2"
    assert int(stats["domains"].replace(",", "")) == len(site.rows)
    # The blocked domains crossed the incident thresholds, and the cut is an outage.
    incidents = texts(driver, ".incident")
    for row in blocked_rows(site):
        assert any(text.startswith(f"{row.domain} blocked ({row.expected}") for text in incidents)
    assert any(text.startswith(f"Outage on {NETWORK}") for text in incidents)
    # The technique chart labels every technique the table expects.
    chart = driver.find_element(By.CSS_SELECTOR, "svg[aria-labelledby^='techniques']")
    labels = {t.text for t in chart.find_elements(By.TAG_NAME, "text")}
    assert {row.expected for row in blocked_rows(site)} <= labels
    chromium.screenshot(driver, screenshots, "overview")


def test_the_matrix_shows_each_domains_technique(
    driver: Any, site: LabSite, screenshots: str | None
) -> None:
    visit(driver, site, "/matrix?days=1&show=all")
    found = matrix(driver)
    assert set(found) == {row.domain for row in site.rows}
    for row in site.rows:
        cls, text = found[row.domain][NETWORK]
        if row.expected in NOT_BLOCKING:
            # A clean site is never filled with a block's colour: a failure or two around
            # the cut (a DNS timeout as the link went) is only marked, as a minority.
            verdict = cls.removeprefix("v v-").removesuffix(" minor").replace("-", ".")
            assert verdict in NOT_BLOCKING or cls.endswith(" minor"), (row, cls, text)
            assert text.split()[0] in NOT_BLOCKING, (row, text)
        else:
            # Marked "minor" if the cut's offline runs outnumber it: the technique still.
            assert cls.removesuffix(" minor") == f"v v-{row.expected.replace('.', '-')}", text
            technique = re.escape(row.expected)
            assert re.fullmatch(rf"{technique} \d+/\d+|.*, {technique} \d+", text), text
    chromium.screenshot(driver, screenshots, "matrix")


def test_timelines_chart_the_techniques(
    driver: Any, site: LabSite, screenshots: str | None
) -> None:
    row = next(r for r in blocked_rows(site) if r.expected.startswith("tls."))
    visit(driver, site, f"/timeline?domain={row.domain}&days=1")
    chart = driver.find_element(By.CSS_SELECTOR, "svg.chart")
    fills = {p.get_attribute("fill") for p in chart.find_elements(By.TAG_NAME, "path")}
    assert verdict_colour(row.expected) in fills
    legend = [t.text for t in chart.find_elements(By.TAG_NAME, "text")]
    assert any(label.startswith(f"{row.expected} (") for label in legend)
    chromium.screenshot(driver, screenshots, "timeline-domain")
    visit(driver, site, f"/timeline?asn={LAB_ASN}&cc={LAB_CC}&days=1")
    assert driver.find_element(By.TAG_NAME, "h1").text == NETWORK
    chart = driver.find_element(By.CSS_SELECTOR, "svg.chart")
    fills = {p.get_attribute("fill") for p in chart.find_elements(By.TAG_NAME, "path")}
    assert {verdict_colour(r.expected) for r in site.rows} <= fills
    chromium.screenshot(driver, screenshots, "timeline-network")


def test_the_outage_is_on_the_time_axis(
    driver: Any, site: LabSite, screenshots: str | None
) -> None:
    visit(driver, site, "/outages?days=1")
    rows = texts(driver, "table tbody tr")
    assert any(r.startswith(NETWORK) and " offline " in f" {r} " for r in rows), rows
    chart = driver.find_element(By.CSS_SELECTOR, "svg.chart")
    fills = [r.get_attribute("fill") for r in chart.find_elements(By.TAG_NAME, "rect")]
    assert OUTAGE_COLOURS["offline"] in fills
    assert site.agent_id not in driver.page_source  # public: a count of agents only
    chromium.screenshot(driver, screenshots, "outages")


def test_a_measurement_is_explained(driver: Any, site: LabSite, screenshots: str | None) -> None:
    row = next(r for r in blocked_rows(site) if r.expected == "tls.reset")
    visit(driver, site, f"/timeline?domain={row.domain}&days=1")
    link = driver.find_element(By.LINK_TEXT, "explained")
    target = link.get_attribute("href")
    link.click()
    arrived(driver, target)
    explanation = driver.find_element(By.CSS_SELECTOR, "p.explain").text
    assert explanation.startswith(f"{row.domain}:"), explanation
    assert site.agent_id not in driver.page_source
    # The newest measurement may be another run's; a reset one reads as a reset.
    query = f"/api/v1/measurements?domain={row.domain}&verdict={row.expected}&limit=1"
    with urllib.request.urlopen(f"{site.url}{query}", timeout=10) as answer:
        [found] = json.load(answer)["measurements"]
    visit(driver, site, f"/measurement/{found['id']}")
    explanation = driver.find_element(By.CSS_SELECTOR, "p.explain").text
    assert explanation.startswith(f"{row.domain}:"), explanation
    assert "reset" in explanation
    chromium.screenshot(driver, screenshots, "measurement")


def test_a_report_opens_and_prints_to_pdf(
    driver: Any, site: LabSite, screenshots: str | None
) -> None:
    visit(driver, site, "/?days=1")
    row = blocked_rows(site)[0]
    incident = next(
        e for e in driver.find_elements(By.CSS_SELECTOR, ".incident")
        if e.text.startswith(f"{row.domain} blocked")
    )  # fmt: skip
    report = incident.find_element(By.LINK_TEXT, "report").get_attribute("href")
    visit(driver, site, report.removeprefix(site.url))
    assert row.domain in driver.find_element(By.TAG_NAME, "h1").text
    assert driver.find_elements(By.CSS_SELECTOR, "svg")  # the timeline chart
    pdf = chromium.print_pdf(driver)
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 1
    chromium.screenshot(driver, screenshots, "report")


def test_agent_health_needs_the_operators_login(
    driver: Any, site: LabSite, screenshots: str | None
) -> None:
    visit(driver, site, "/operator/agents")
    assert site.agent_id not in driver.page_source
    driver.find_element(By.LINK_TEXT, "Log in with an operator token").click()
    chromium.screenshot(driver, screenshots, "login")
    driver.find_element(By.ID, "token").send_keys(site.collector.operator_token())
    driver.find_element(By.CSS_SELECTOR, "main form button").click()
    arrived(driver, site.url + "/operator/agents")
    row = next(r for r in texts(driver, "table tbody tr") if site.agent_id in r)
    # The real daemon's version, as its batches say it.
    for part in ("online", NETWORK, "lab agent", __version__):
        assert part in row, row
    assert re.search(r"\b\d+ / \d+\b", row), row  # its spool: measurements / checks
    assert all(url.startswith(site.url + "/") for url in chromium.requests(driver))
    visit(driver, site, "/operator/agents")
    chromium.screenshot(driver, screenshots, "agents")
    driver.find_element(By.CSS_SELECTOR, "nav.operator button").click()
    arrived(driver, site.url + "/")
    visit(driver, site, "/operator/agents")
    assert site.agent_id not in driver.page_source


def test_the_pages_fit_a_phone(driver: Any, site: LabSite, screenshots: str | None) -> None:
    size = driver.get_window_size()
    driver.set_window_size(390, 844)
    try:
        for path in ("/?days=1", "/outages?days=1", "/matrix?days=1"):
            visit(driver, site, path)
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{path} is {overflow}px wider than the phone"
        visit(driver, site, "/?days=1")
        chromium.screenshot(driver, screenshots, "overview-phone")
    finally:
        driver.set_window_size(size["width"], size["height"])

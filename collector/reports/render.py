"""Collector reports: the report as one self-contained HTML page.

A Jinja2 template with autoescaping on (as the dashboard's): every domain, explanation or
evidence string reaches the page escaped; the timeline is the dashboard's SVG chart
(``collector.dashboard.charts``, escaped there). The stylesheet is inlined and the chart is
inline SVG, so the file loads nothing from anywhere, whether served, saved or mailed; the
page served carries a Content-Security-Policy allowing only that stylesheet, by its hash.
Print CSS gives A4 pages with the method on a page of its own. Nothing in it depends on
the clock: the same data and query give the same bytes, served or written by the CLI.
"""

from __future__ import annotations

import base64
import hashlib
from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from collector import __version__
from collector.dashboard.charts import timeline_svg
from collector.evidence.query import EvidenceQuery
from collector.explain import technique
from collector.reports.data import ReportData
from collector.reports.summary import network_label, networks_label, summary, when
from collector.storage.schema import HOUR_MS

__all__ = ["CSS", "REPORT_HEADERS", "render"]

CSS = resources.files("collector.reports").joinpath("report.css").read_text(encoding="utf-8")
_CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode("ascii")
REPORT_HEADERS = {
    # The page's own stylesheet, by its hash, and nothing else: no script, no request.
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src data:; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

_ENV = Environment(
    loader=PackageLoader("collector.reports", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.globals.update(when=when, network_label=network_label, technique=technique)


def _arguments(q: EvidenceQuery) -> str:
    """The query as the ``bundle`` and ``report`` commands take it."""
    parts = [f"--domain {q.domain}"] if q.domain else []
    parts += [f"--asn {asn}" for asn in q.asns]
    return " ".join([*parts, f"--since {q.since_ms}", f"--until {q.until_ms}"])


def render(data: ReportData) -> str:
    q = data.query
    subject = q.domain or "every domain"
    chart = timeline_svg(
        data.series,
        bucket_ms=data.bucket_ms,
        title=f"{subject}: measurements per {'hour' if data.bucket_ms == HOUR_MS else 'day'}",
        since_ms=q.since_ms,
        until_ms=q.until_ms,
        chart_id="report-timeline",
    )
    return _ENV.get_template("report.html.j2").render(
        data=data,
        q=q,
        subject=subject,
        where=networks_label(data),
        summary=summary(data),
        chart=chart,
        css=Markup(CSS),  # the package's own file, never input
        arguments=_arguments(q),
        hourly=data.bucket_ms == HOUR_MS,
        version=__version__,
    )

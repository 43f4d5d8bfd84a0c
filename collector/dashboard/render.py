"""Collector dashboard: templates to responses, with the headers every page carries.

One Jinja2 environment, autoescaping everything (a domain, a resolver's answer or an agent's
name reaches a page only escaped; charts come as ``Markup`` from ``collector.dashboard.charts``,
escaped there). Every page is sent with a Content-Security-Policy that allows nothing but this
origin's stylesheet and forms (no script at all, no inline style, no frame), and compressed
when the browser accepts it: the pages are for slow links. The stylesheet is served from
memory under a name holding its hash, so a browser may keep it for good.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from importlib import resources
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from collector.dashboard.charts import VERDICT_COLOURS, text_colour
from collector.dashboard.paths import STATIC_PREFIX
from collector.dashboard.views import network_label

__all__ = [
    "CSP",
    "CSS",
    "CSS_PATH",
    "ENV",
    "html_response",
    "network_label",
    "render",
    "render_text",
    "security_headers",
    "utc",
    "verdict_class",
]

# Nothing from anywhere else, nothing inline but the SVG the pages draw (which is markup, not
# script or style): a page injected into still runs nothing and loads nothing.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def security_headers(*, private: bool) -> dict[str, str]:
    """The headers of every dashboard page; ``private`` ones (the operator's, or any page
    rendered for the operator) are never stored by a cache."""
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        # Not no-referrer: with it a browser sends "Origin: null" on the pages' own forms,
        # which the login's same-origin check (collector.dashboard.session) must refuse.
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cache-Control": "no-store" if private else "no-cache",
    }


def utc(ms: int | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    return "-" if ms is None else time.strftime(fmt, time.gmtime(ms / 1000))


def verdict_class(verdict: str | None) -> str:
    """The CSS class of a verdict's colour: ``v-tls-reset``."""
    return "" if verdict is None else "v v-" + verdict.replace(".", "-")


def _stylesheet() -> bytes:
    base = resources.files("collector.dashboard").joinpath("static/dashboard.css").read_text()
    colours = "".join(
        f".v-{name.replace('.', '-')} {{ background: {colour}; color: {text_colour(colour)}; }}\n"
        f".v-{name.replace('.', '-')}.minor {{ background: none; color: inherit; "
        f"box-shadow: inset .4rem 0 0 {colour}; }}\n"
        for name, colour in sorted(VERDICT_COLOURS.items())
    )
    return (base + colours).encode()


CSS = _stylesheet()
CSS_PATH = f"{STATIC_PREFIX}dashboard.{hashlib.sha256(CSS).hexdigest()[:12]}.css"

ENV = Environment(
    loader=PackageLoader("collector.dashboard", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["utc"] = utc
ENV.filters["verdict_class"] = verdict_class
ENV.globals["network_label"] = network_label
ENV.globals["css_path"] = CSS_PATH


def render_text(template: str, context: Mapping[str, Any]) -> str:
    """The page as text; blocking (CPU), so handlers call :func:`render`."""
    return ENV.get_template(template).render(context)


def html_response(body: str, *, status: int = 200, private: bool = False) -> web.Response:
    response = web.Response(
        text=body,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=security_headers(private=private),
    )
    response.enable_compression()
    return response


async def render(
    template: str, context: Mapping[str, Any], *, status: int = 200, private: bool = False
) -> web.Response:
    """``template`` rendered off the event loop (a matrix page is thousands of cells)."""
    body = await asyncio.to_thread(render_text, template, context)
    return html_response(body, status=status, private=private)

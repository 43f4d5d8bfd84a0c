"""Collector dashboard: its routes on the collector's app, installed by ``create_app``.

The public pages (``collector.dashboard.pages``), the operator's (``operator_pages``), and
the two static files, from memory: the stylesheet under a name holding its hash (so a
browser keeps it for good) and the icon. After ``collector.web.operator.install``: the pages
check the operator's credential with its token cache.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from collector.dashboard import operator_pages, pages
from collector.dashboard.paths import FAVICON_PATH, STATIC_PREFIX
from collector.dashboard.render import CSS, CSS_PATH

__all__ = ["install"]

_ICON = resources.files("collector.dashboard").joinpath("static/favicon.svg").read_bytes()
# name: (body, content type, seconds a browser may keep it)
_FILES = {
    CSS_PATH.removeprefix(STATIC_PREFIX): (CSS, "text/css", 365 * 86400),
    FAVICON_PATH.removeprefix(STATIC_PREFIX): (_ICON, "image/svg+xml", 86400),
}


async def static(request: web.Request) -> web.Response:
    found = _FILES.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    body, content_type, max_age = found
    response = web.Response(
        body=body,
        content_type=content_type,
        headers={
            "Cache-Control": f"public, max-age={max_age}, immutable",
            "X-Content-Type-Options": "nosniff",
        },
    )
    response.enable_compression()
    return response


def install(app: web.Application) -> None:
    app.router.add_routes(pages.routes)
    app.router.add_routes(operator_pages.routes)
    app.router.add_get(STATIC_PREFIX + "{name}", static, allow_head=False)

"""Collector dashboard: the operator's pages: login, logout, and the agents' health.

Agent health names agents and follows them over time (last upload, last connectivity check,
their outages), so it needs the operator's credential, as ``/api/v1/agents`` does; without
it the page is a 401 that links to the login. Login and logout are POST only, from this
origin (``collector.dashboard.session``). These pages are never cached.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from agent.api.paths import AGENTS_PATH
from collector.dashboard import charts, paths, session
from collector.dashboard.pages import common, page, respond
from collector.dashboard.params import read_params
from collector.dashboard.render import render
from collector.dashboard.views import outage_rows, window
from collector.errors import ApiError
from collector.ingest.accept import now_ms
from collector.outages import SILENT_TAIL_MS
from collector.storage.dashboard import latest_checks
from collector.web.keys import STORAGE
from collector.web.operator import check_token

__all__ = ["routes"]

routes = web.RouteTableDef()


def _see_other(location: str) -> web.Response:
    """A 303 to ``location``: after a POST, the browser GETs the next page."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


async def _login_page(who: session.Viewer, error: str | None, status: int) -> web.Response:
    context = common(who, "login", "Operator login") | {"error": error}
    response = await render("login.html", context, status=status, private=True)
    if who.ended:
        session.log_out(response)
    return response


@routes.get(paths.LOGIN_PATH, allow_head=False)
@page
async def login_form(request: web.Request) -> web.Response:
    read_params(request.query, frozenset())
    return await _login_page(await session.viewer(request), None, 200)


@routes.post(paths.LOGIN_PATH)
@page
async def login(request: web.Request) -> web.StreamResponse:
    session.check_same_origin(request)
    token = await session.submitted_token(request)
    try:
        await check_token(request, token)
    except ApiError as exc:
        return await _login_page(session.Viewer(operator=False), str(exc), 401)
    response = _see_other(paths.OPERATOR_AGENTS_PATH)
    session.log_in(response, request, token)
    return response


@routes.post(paths.LOGOUT_PATH)
@page
async def logout(request: web.Request) -> web.StreamResponse:
    session.check_same_origin(request)
    response = _see_other(paths.HOME_PATH)
    session.log_out(response)
    return response


@routes.get(paths.OPERATOR_AGENTS_PATH, allow_head=False)
@page
async def agent_health(request: web.Request) -> web.Response:
    params = read_params(request.query, frozenset({"days"}))
    who = await session.viewer(request)
    if not who.operator:
        context = common(who, "agents", "Agent health") | {"next": paths.OPERATOR_AGENTS_PATH}
        response = await render("need_login.html", context, status=401, private=True)
        response.headers["WWW-Authenticate"] = 'Bearer realm="netsonde-operator"'
        if who.ended:
            session.log_out(response)
        return response
    now = now_ms()
    w = window(params["days"], now)
    storage = request.app[STORAGE]

    def read() -> tuple[Any, ...]:
        return storage.agent_summaries(), {c.agent_id: c for c in latest_checks(storage)}

    summaries, checks = await asyncio.to_thread(read)
    found = await storage.outages_async(now_ms=now, since_ms=w.since_ms, until_ms=w.until_ms)
    names = {s.id: s.name for s in summaries}
    rows = outage_rows(found, lambda o: [f"{names.get(a, a)} ({a})" for a in o.agents])
    context = common(who, "agents", "Agent health") | {
        "window": w, "agents": summaries, "checks": checks, "now": now,
        "online_ms": SILENT_TAIL_MS, "outages": found, "names": names, "api": AGENTS_PATH,
        "chart": charts.outage_svg(
            rows, since_ms=w.since_ms, until_ms=w.until_ms, chart_id="agent-outages",
            title=f"Outages per agent, last {w.days} days"),
    }  # fmt: skip
    return await respond(who, "agents.html", context)

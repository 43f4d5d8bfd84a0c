"""Collector web layer: ``POST /api/v1/farend``, where enrolled agents get the far end's address
and a token for it, and the far end's life beside the API.

The request is signed like ``/control`` (``agent.api.auth``; 401 for anyone but an enrolled,
unrevoked agent) and rate-limited with it. The answer::

    {"host", "tls_port", "http_port", "udp_port", "token", "expires", "targets"}

``host`` is ``--farend-advertise``, else the host the agent reached this API by; ``expires``
is Unix ms; ``targets`` the URLs the daemons should test for throttling: the operator's
(``--farend-target``), then the served test list's rows in ``--farend-category``. Without a far end
(``--no-farend``) it is 404. The far end itself (``collector.farend``) starts in this app's
``cleanup_ctx`` and reports its refusals and bytes to the app's metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from agent.api.paths import FAREND_PATH
from collector.config import Settings
from collector.errors import ApiError
from collector.farend.server import Farend, Ports, signer_for
from collector.farend.service import FarendService
from collector.web.handlers import signed_body
from collector.web.keys import CONTROL_LIMITER, FAREND, METRICS, TESTLIST

__all__ = ["farend_context", "routes"]

routes = web.RouteTableDef()


def farend_context(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        config = settings.farend
        if config is None:
            yield
            return
        if config.remote:
            ports = Ports(config.tls_port, config.http_port, config.udp_port)
            app[FAREND] = FarendService(config, signer_for(config), ports)
            yield
            return
        server = Farend(config, app[METRICS])
        ports = await server.start()
        app[FAREND] = FarendService(config, server.signer, ports, server)
        try:
            yield
        finally:
            await server.stop()

    return context


@routes.post(FAREND_PATH)
async def farend_ticket(request: web.Request) -> web.Response:
    agent_id, _ = await signed_body(request)
    if wait := request.app[CONTROL_LIMITER].check(agent_id):
        raise ApiError(429, "too many requests from this agent; slow down", "rate", wait)
    service = request.app.get(FAREND)
    if service is None:
        raise ApiError(404, "this collector runs no far end")
    source = request.app.get(TESTLIST)
    testlist = await source.get() if source is not None else None
    return web.json_response(service.ticket(agent_id, request.url.host, testlist))

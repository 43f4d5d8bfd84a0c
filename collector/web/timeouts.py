"""Collector web layer: how long a client may idle, and take to send a request.

Without bounds, sockets that trickle a request a byte at a time stay open for as long as
the client likes (200 of them for 120 s and more in the security audit, issue 21).

- **Idle and request head**: aiohttp's keep-alive timer (``keepalive_timeout``, passed to
  the runner by :func:`runner_options`) is armed when a connection opens and again when a
  response ends, and only a complete request head disarms it: bytes of an unfinished head
  do not reset it. So it closes a connection that sends nothing and one that trickles its
  head alike. aiohttp 3.14 has no separate head timeout; this is one value for both.
- **Request body**: aiohttp has no timeout once the head is in. :func:`body_deadline` is
  a middleware giving a body ``body_timeout`` seconds plus one more per
  :data:`MIN_BODY_RATE` bytes received, the rule of Apache's mod_reqtimeout: an agent on a
  slow, throttled link still gets a 4 MiB batch through, as long as it keeps sending, and a
  client that stalls is cut. Cutting closes the connection; with handler cancellation on
  (``serve`` and the test server) the handler is cancelled with it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from collector.config import Settings

__all__ = ["MIN_BODY_RATE", "body_deadline", "runner_options"]

# Bytes a second a body must average once its first body_timeout seconds are up: 8 kbit/s,
# far below any link an agent can upload from at all.
MIN_BODY_RATE = 1024

log = logging.getLogger("netsonde.collector.web")


def runner_options(settings: Settings) -> dict[str, Any]:
    """What ``web.AppRunner`` (hence the server's connections) takes from the settings."""
    return {"keepalive_timeout": settings.idle_timeout}


def body_deadline(timeout: float, min_rate: float = MIN_BODY_RATE) -> Middleware:
    """Closes the connection of a request whose body arrives slower than the rule above."""

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        content = request.content
        if content.is_eof():  # no body, or all of it in already
            return await handler(request)
        loop = asyncio.get_running_loop()
        start = loop.time()

        def check() -> None:
            transport = request.transport
            if content.is_eof() or transport is None:
                return
            due = start + timeout + content.total_raw_bytes / min_rate
            if loop.time() < due:
                pending[0] = loop.call_at(due, check)
                return
            log.info("closing a connection whose request body is too slow: %s", request.path)
            transport.close()

        pending = [loop.call_at(start + timeout, check)]
        try:
            return await handler(request)
        finally:
            pending[0].cancel()

    return deadline

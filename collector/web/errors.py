"""Collector web layer: every refused request becomes the same JSON error, here.

Handlers, ingest and the parameter parsers raise :class:`collector.errors.ApiError`; aiohttp
raises its own ``HTTPException`` for a 404, 405 or 413. This middleware turns both into
``{"error": message, "reason": ...}`` with the right status (and ``Retry-After``, ``Allow``,
``WWW-Authenticate``), and notes the reason for the metrics' rejects counter.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from collector.errors import ApiError
from collector.web.metrics import note_reject

__all__ = ["OPERATOR_REASON", "error_response", "json_errors"]

# The reason of a 401 for want of the operator's bearer token (collector.web.operator).
OPERATOR_REASON = "operator_token"


def error_response(status: int, message: str, reason: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if reason is not None:
        body["reason"] = reason
    return web.json_response(body, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        note_reject(request, exc.reason)
        response = error_response(exc.status, str(exc), exc.reason)
        if exc.retry_after:
            response.headers["Retry-After"] = str(max(1, round(exc.retry_after + 0.5)))
        if exc.reason == OPERATOR_REASON:
            # RFC 9110 11.6.1: a 401 says how to authenticate. Only the operator's routes
            # use HTTP authentication; agents sign their requests instead.
            response.headers["WWW-Authenticate"] = 'Bearer realm="netsonde-operator"'
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, exc.reason)
        if "Allow" in exc.headers:  # a 405 must say what is allowed
            response.headers["Allow"] = exc.headers["Allow"]
        return response

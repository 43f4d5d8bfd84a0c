"""Agent API: what a failed request to the collector is called, in one place.

Every client of the collector (the control, the uploader, enrolment, the test list, and the
lean idle mode's http.client requests) reports a failed request as ``<what>_<kind>``, for
example ``control_timeout`` or ``upload_tls_error``, and raises only :class:`CollectorError`
subclasses. Standard library only: the lean mode has no aiohttp, and an aiohttp exception is
recognised through ``sys.modules`` because one can only exist once aiohttp is loaded.
"""

from __future__ import annotations

import http.client
import ssl
import sys

__all__ = [
    "BAD_RESPONSE",
    "TIMEOUT",
    "TLS_ERROR",
    "UNREACHABLE",
    "CollectorError",
    "failure_reason",
    "request_failure",
]

UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
TLS_ERROR = "tls_error"
BAD_RESPONSE = "bad_response"


class CollectorError(Exception):
    """The collector could not be used for a request; the message says why, for people."""


def _aiohttp_error(exc: BaseException, *names: str) -> bool:
    aiohttp = sys.modules.get("aiohttp")
    return aiohttp is not None and isinstance(exc, tuple(getattr(aiohttp, n) for n in names))


def request_failure(exc: BaseException, what: str) -> str:
    """``<what>_<kind>`` for a request that raised ``exc``: the network's or the collector's
    doing (a timeout, a TLS problem, an answer that is not HTTP, no route)."""
    # Timeouts first: aiohttp's ServerTimeoutError is also a ClientError.
    if isinstance(exc, TimeoutError):
        kind = TIMEOUT
    elif isinstance(exc, ssl.SSLError | ssl.CertificateError) or _aiohttp_error(
        exc, "ClientSSLError"
    ):
        kind = TLS_ERROR
    elif isinstance(exc, http.client.HTTPException) or _aiohttp_error(
        exc, "ClientResponseError", "ClientPayloadError"
    ):
        kind = BAD_RESPONSE
    else:
        kind = UNREACHABLE
    return f"{what}_{kind}"


def failure_reason(exc: BaseException) -> str:
    """A failed request in a few words, for a log line or the status."""
    return "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__

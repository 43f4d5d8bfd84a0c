"""Agent layer 3, control client: asks the collector what a target looks like from outside.

:class:`HTTPControl` is the :class:`agent.site.ControlSource` the site test uses.
The collector may be blocked, down or slow exactly when measurements matter
most, so nothing here raises for a network or collector problem: the answer is
then a short failure string, and the site test decides from local evidence.
The API paths and media type live here too, so the collector (which imports
from ``agent``) serves exactly what this client expects.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence

import aiohttp

from agent.collector_api import CONTROL_PATH as CONTROL_PATH
from agent.collector_api import HEALTH_PATH as HEALTH_PATH
from agent.collector_api import MSGPACK as MSGPACK
from agent.collector_http import CollectorClient
from agent.measurement import Target, Vantage
from agent.net import failures
from agent.wire import WireError, decode_vantage

CACHE_HEADER = "X-Netsonde-Control-Cache"
MAX_ADDRESSES = 16  # the collector refuses more
# A control is a few hundred bytes; far more means something that is not our collector.
MAX_RESPONSE_BYTES = 1 << 20

UNREACHABLE = failures.CONTROL_UNREACHABLE
TIMEOUT = failures.CONTROL_TIMEOUT
BAD_RESPONSE = failures.CONTROL_BAD_RESPONSE
TLS_ERROR = failures.CONTROL_TLS_ERROR


# What the network or the collector can do to a request; anything else is a bug and raises.
_REQUEST_FAILURES = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def http_failure(status: int) -> str:
    return f"{failures.CONTROL_HTTP_PREFIX}{status}"


class HTTPControl(CollectorClient):
    """The collector's control endpoint, over one aiohttp session (``async with``)."""

    def __init__(
        self, collector_url: str, *, timeout: float = 10.0, ca_file: str | None = None
    ) -> None:
        super().__init__(timeout=timeout, ca_file=ca_file)
        self.collector_url = collector_url.rstrip("/")

    async def fetch(self, target: Target, addresses: Sequence[str]) -> Vantage | str:
        """The control's view of ``target`` (also measuring ``addresses``), or a failure."""
        payload = {"url": target.url, "addresses": list(addresses)[:MAX_ADDRESSES]}
        try:
            async with self.session.post(self.collector_url + CONTROL_PATH, json=payload) as resp:
                if resp.status != 200:
                    return http_failure(resp.status)
                if resp.content_type != MSGPACK:
                    return BAD_RESPONSE
                data = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > MAX_RESPONSE_BYTES:
                        return BAD_RESPONSE
        except _REQUEST_FAILURES as exc:
            return _classify(exc)
        try:
            return decode_vantage(bytes(data))
        except WireError:
            return BAD_RESPONSE

    async def reachable(self) -> bool:
        """The connectivity check: does the collector answer its health endpoint?"""
        try:
            async with self.session.get(self.collector_url + HEALTH_PATH) as resp:
                await resp.read()
                return resp.status == 200
        except _REQUEST_FAILURES:
            return False


def _classify(exc: BaseException) -> str:
    # Timeouts first: aiohttp's ServerTimeoutError is also a ClientError.
    if isinstance(exc, asyncio.TimeoutError):
        return TIMEOUT
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return TLS_ERROR
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return BAD_RESPONSE
    return UNREACHABLE

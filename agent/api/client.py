"""Agent API: the one way the agent opens HTTP sessions to a collector.

The control client and the uploader trust the same anchors (the system store plus
the operator's CA, since a self-hosted collector may use a private CA) and announce
themselves the same way, so that setup lives here once, with what a failed request
looks like to all of them, and how their answers are read: never more than a cap
(:func:`read_capped`), and decoded without an exception for anything the collector, or
whoever answers in its name, may send (:func:`json_or_none`).
"""

from __future__ import annotations

import json
import ssl
from types import TracebackType
from typing import Any, Self

import aiohttp

from agent.api.paths import USER_AGENT

# What the network or the collector can do to a request; anything else is a bug and raises.
REQUEST_FAILURES = (aiohttp.ClientError, TimeoutError, OSError)
# Upload and enrolment answers are a few hundred bytes (an upload's lists its ids: 500 of 30
# bytes); past this it is not our collector, and reading on would only fill the agent's memory.
MAX_ANSWER_BYTES = 1 << 20
_CHUNK = 64 * 1024


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """``resp``'s body, read a chunk at a time; None, and the connection closed with the
    rest unread, as soon as it is (or says it will be) over ``limit`` bytes."""
    if resp.content_length is not None and resp.content_length > limit:
        resp.close()
        return None
    data = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK):
        data += chunk
        if len(data) > limit:
            resp.close()
            return None
    return bytes(data)


def json_or_none(body: str | bytes) -> Any:
    """``body`` as JSON, or None for anything else: a proxy's HTML page, bytes that are not
    UTF-8, or nesting deeper than the parser's recursion limit."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def trust(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


def open_session(context: ssl.SSLContext, timeout: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context),
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers={"User-Agent": USER_AGENT},
    )


class CollectorClient:
    """One aiohttp session to a collector, open between ``async with`` and its end."""

    def __init__(self, *, timeout: float, ca_file: str | None) -> None:
        self.timeout = timeout
        self._ssl = trust(ca_file)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = open_session(self._ssl, self.timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__} is used outside 'async with'")
        return self._session

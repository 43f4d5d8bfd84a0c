"""Agent API: the one way the agent opens HTTP sessions to a collector.

The control client and the uploader trust the same anchors (the system store plus
the operator's CA, since a self-hosted collector may use a private CA) and announce
themselves the same way, so that setup lives here once, with what a failed request
looks like to all of them.
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


def json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:  # a proxy's HTML page, say
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

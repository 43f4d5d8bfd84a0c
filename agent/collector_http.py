"""Agent daemon: the one way the agent opens HTTP sessions to a collector.

The control client and the uploader trust the same anchors (the system store plus
the operator's CA, since a self-hosted collector may use a private CA) and announce
themselves the same way, so that setup lives here once.
"""

from __future__ import annotations

import ssl

import aiohttp

from agent import __version__

USER_AGENT = f"netsonde-agent/{__version__}"


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

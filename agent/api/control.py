"""Agent API, the control client: asks the collector what a target looks like from outside.

:class:`HTTPControl` is the :class:`agent.site.ControlSource` the site test uses.
The collector may be blocked, down or slow exactly when measurements matter
most, so nothing here raises for a network or collector problem: the answer is
then a short failure string, and the site test decides from local evidence. The control
serves enrolled agents only: every request is signed with the agent's key
(``agent.api.auth``), and without a key no request is sent at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from agent.api.auth import Credential, signed_headers
from agent.api.client import REQUEST_FAILURES, CollectorClient
from agent.api.errors import request_failure
from agent.api.paths import CONTROL_PATH, HEALTH_PATH, MAX_ADDRESSES, MSGPACK
from agent.model import failures
from agent.model.measurement import Target, Vantage
from agent.wire.record import WireError, decode_vantage

# A control is a few hundred bytes; far more means something that is not our collector.
MAX_RESPONSE_BYTES = 1 << 20

BAD_RESPONSE = failures.CONTROL_BAD_RESPONSE


def http_failure(status: int) -> str:
    return f"{failures.CONTROL_HTTP_PREFIX}{status}"


class HTTPControl(CollectorClient):
    """The collector's control endpoint, over one aiohttp session (``async with``)."""

    def __init__(
        self,
        collector_url: str,
        *,
        timeout: float = 10.0,
        ca_file: str | None = None,
        credential: Credential | None = None,
    ) -> None:
        super().__init__(timeout=timeout, ca_file=ca_file)
        self.collector_url = collector_url.rstrip("/")
        self.credential = credential

    async def fetch(self, target: Target, addresses: Sequence[str]) -> Vantage | str:
        """The control's view of ``target`` (also measuring ``addresses``), or a failure."""
        if self.credential is None:
            return failures.CONTROL_UNAUTHENTICATED
        payload = {"url": target.url, "addresses": list(addresses)[:MAX_ADDRESSES]}
        # Serialized once: the signature covers exactly the bytes sent.
        body = json.dumps(payload).encode()
        headers = signed_headers(self.credential, "POST", CONTROL_PATH, body)
        headers["Content-Type"] = "application/json"
        url = self.collector_url + CONTROL_PATH
        try:
            async with self.session.post(url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    return http_failure(resp.status)
                if resp.content_type != MSGPACK:
                    return BAD_RESPONSE
                data = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > MAX_RESPONSE_BYTES:
                        return BAD_RESPONSE
        except REQUEST_FAILURES as exc:
            return request_failure(exc, "control")
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
        except REQUEST_FAILURES:
            return False

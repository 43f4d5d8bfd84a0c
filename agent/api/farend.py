"""Agent API, the far-end client: asks the collector where its far end is, for a token.

``POST /api/v1/farend``, signed with the agent's key (``agent.api.auth``), answers where the
far end listens and a short-lived token for it (``agent.model.farend.FarendTicket``). As the
control client, nothing here raises for a network or collector problem: the answer is then
a failure string (``farend_unreachable``, ``farend_http_404`` for a collector without a far
end, ...), and the throttle test reports it as the reason it could not run.
"""

from __future__ import annotations

import time

from agent.api.auth import Credential, signed_headers
from agent.api.client import REQUEST_FAILURES, CollectorClient, json_or_none, read_capped
from agent.api.errors import request_failure
from agent.api.paths import FAREND_PATH
from agent.model.farend import FarendTicket, parse_ticket

__all__ = ["FAREND_BAD_RESPONSE", "FAREND_UNAUTHENTICATED", "FarendClient", "Tickets"]

FAREND_UNAUTHENTICATED = "farend_unauthenticated"  # no enrolled identity to sign with
FAREND_BAD_RESPONSE = "farend_bad_response"
FAREND_HTTP_PREFIX = "farend_http_"
MAX_ANSWER = 64 * 1024  # a ticket is a few hundred bytes, with flagged targets a few KiB
# A ticket is used only while it has this long left: a throttle test takes about 15 s.
TICKET_MARGIN_MS = 60_000


class FarendClient(CollectorClient):
    """The collector's far-end endpoint, over one aiohttp session (``async with``)."""

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

    async def ticket(self) -> FarendTicket | str:
        """Where the far end is and a token for it, or why there is none."""
        if self.credential is None:
            return FAREND_UNAUTHENTICATED
        body = b"{}"
        headers = signed_headers(self.credential, "POST", FAREND_PATH, body)
        headers["Content-Type"] = "application/json"
        try:
            async with self.session.post(
                self.collector_url + FAREND_PATH, data=body, headers=headers
            ) as resp:
                if resp.status != 200:
                    return f"{FAREND_HTTP_PREFIX}{resp.status}"
                data = await read_capped(resp, MAX_ANSWER)
        except REQUEST_FAILURES as exc:
            return request_failure(exc, "farend")
        ticket = parse_ticket(json_or_none(data)) if data is not None else None
        return ticket if ticket is not None else FAREND_BAD_RESPONSE


class Tickets:
    """The far end's ticket, fetched again when the last one would not last through a test
    (or was a failure: the next test asks again)."""

    def __init__(self, client: FarendClient) -> None:
        self.client = client
        self.current: FarendTicket | str | None = None

    async def get(self) -> FarendTicket | str:
        current = self.current
        if not isinstance(current, FarendTicket) or (
            current.expires_ms - TICKET_MARGIN_MS <= time.time() * 1000
        ):
            current = self.current = await self.client.ticket()
        return current

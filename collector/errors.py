"""Collector: the one error a request is refused with, framework-free.

Anything a client sends that the collector will not take (a bad body, an unknown agent, a
forged signature, too many uploads) raises :class:`ApiError` wherever it is found, in the
handlers, ingest or the query parsers. The web layer turns it into a JSON 4xx in one place
(``collector.web.errors``); nothing a client sends reaches a 5xx.
"""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """A request refused with a 4xx; ``reason`` is for machines, the message for people."""

    def __init__(
        self, status: int, message: str, reason: str | None = None, retry_after: float = 0.0
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after

"""Collector: the one error a request is refused with, framework-free.

Anything a client sends that the collector will not take (a bad body, an unknown agent, a
forged signature, too many uploads) raises :class:`ApiError` wherever it is found, in the
handlers, ingest or the query parsers. The web layer turns it into a JSON error in one place
(``collector.web.errors``): a 4xx, or the 504 of a control past its deadline; nothing a
client sends reaches a 500.
"""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """A request refused (a 4xx, or a 504 for work past its deadline); ``reason`` is for
    machines, the message for people."""

    def __init__(
        self, status: int, message: str, reason: str | None = None, retry_after: float = 0.0
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after

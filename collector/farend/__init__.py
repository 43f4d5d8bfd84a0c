"""Collector far end: the server outside the censored network that the throttle and protocol
tests compare a trigger with a benign payload through.

Its protocol is ``agent.model.farend``; its files ``files``, tokens ``tokens``, bounds
``limits``, connections ``transfers`` and ``udp``, the running server ``server``, settings
``config`` and command line ``cli``. The API that hands agents their tokens is
``collector.web.farend``. Why it is built this way: docs/design/012-throttling.md.
"""

from __future__ import annotations

__all__ = ["FarendError"]


class FarendError(OSError):
    """The far end cannot start: a port it cannot listen on, or a file it cannot read or
    make. The message says which."""

"""Agent layer 3, wire: the error every wire decoder raises, standard library only.

Apart from ``agent.wire_codec`` so that ``agent.batch`` can subclass it without importing
the record codec (and dnspython behind it): the daemon's lean idle mode signs heartbeat
batches with ``agent.batch`` and must stay light (docs/design/005-lean-idle.md).
"""

from __future__ import annotations

__all__ = ["WireError"]


class WireError(ValueError):
    """A record that is not valid schema v1; the message names the offending field."""

"""Agent model: the verdict names, the taxonomy of DESIGN.md.

``ok``, ``down``, ``offline``, ``inconclusive``, ``layer.kind`` for a block at a layer, or
``throttled`` (the throttle test: agent.verdict.throttle), ``quic.blocked`` or ``vpn.blocked``
(the protocol test: agent.verdict.protocols).
``agent.verdict`` decides among these; the wire format, the collector's rollups and its
queries store and filter by them. How each is reached: docs/design/002-verdicts.md.
"""

from __future__ import annotations

__all__ = ["VERDICTS"]

# fmt: off
VERDICTS = frozenset([
    "ok", "down", "offline", "inconclusive",
    "dns.nxdomain", "dns.servfail", "dns.refused", "dns.timeout",
    "dns.bogon", "dns.mismatch", "dns.injected",
    "tcp.timeout", "tcp.reset", "tcp.refused",
    "tls.reset", "tls.timeout", "tls.eof", "tls.mitm",
    "http.reset", "http.timeout", "http.eof", "http.blockpage", "http.diff",
    "throttled",
    "quic.blocked", "vpn.blocked",
])
# fmt: on

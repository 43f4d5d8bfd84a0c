"""Censor lab: an on-path RST injector, a tap beside the link that can inject but never drop.

Runs in a censor hop as ``python -m tests.lab.onpath_injector CONFIG.json``::

    {"iface": "up0", "reply_iface": "down0", "sni": ["digitalrightsfoundation.pk"]}

In-path censors (iptables DROP and REJECT, the FIN injector beside its DROP, the transparent
proxy) hold the packet; a tap only gets a copy, as the GFW's RST injectors and many
national deployments on mirrored ports do. This one reads the segments the hop *forwards*,
on its net-facing interface (``iface``), outgoing, behind a kernel filter for data segments
to the web ports, so it sees exactly what the router sent on: nothing that died at the hop
with a TTL of 1. For a ClientHello to port 443 naming a listed domain it sends the client,
and only the client, a forged RST+ACK from the server's address, in sequence (its sequence
number is what the client expects next), with a fixed IP TTL and IP ID like the lab's other
injectors. The ClientHello itself goes on: the server answers, and its ServerHello reaches
the agent after the RST, where a capture sees it though the socket is gone. That the
genuine answer still arrives is what tells an on-path injector from an in-path one.

The lab's path is a few microseconds long; the row's server answers a little late
(``censors_more.FAR_SERVER_DELAY_MS``), as a far server does, so the tap, like a real one
near the client, wins the race every time rather than most times.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from tests.lab.fin_injector import (
    RST_ACK,
    TLS_PORT,
    Segment,
    SegmentInjector,
    forge_reply,
    parse_segment,
    run_injector,
)


def is_targeted(segment: Segment, sni: frozenset[bytes]) -> bool:
    """A segment to port 443 naming a listed domain (the ClientHello carries it in clear)."""
    return segment.server_port == TLS_PORT and any(name in segment.payload for name in sni)


def forge_rst(segment: Segment) -> bytes:
    """The server's RST+ACK to ``segment``, which the client's TCP accepts at once."""
    return forge_reply(segment, RST_ACK)


class OnPathInjector(SegmentInjector):
    name = "onpath_injector"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(str(config["iface"]), str(config["reply_iface"]), outgoing=True)
        self.sni = frozenset(str(d).lower().encode() for d in config.get("sni", []))

    def handle(self, frame: bytes, pkttype: int) -> None:
        # Frames queued before the filter was attached get here too: only what left the hop.
        if pkttype != socket.PACKET_OUTGOING:
            return
        segment = parse_segment(frame)
        if segment is not None and is_targeted(segment, self.sni):
            self.send(forge_rst(segment), segment, "RST")


def main() -> int:
    return run_injector(OnPathInjector)


if __name__ == "__main__":
    sys.exit(main())

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

import contextlib
import errno
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from tests.lab.fin_injector import (
    FRAME_LIMIT,
    POLL_SECONDS,
    RECEIVE_BUFFER,
    RST_ACK,
    SO_RCVBUFFORCE,
    TLS_PORT,
    Segment,
    forge_reply,
    parse_segment,
    segment_filter,
)
from tests.lab.injector import attach_filter
from tests.lab.service import announce_ready, load_config

ETH_P_ALL = 0x0003


def is_targeted(segment: Segment, sni: frozenset[bytes]) -> bool:
    """A segment to port 443 naming a listed domain (the ClientHello carries it in clear)."""
    return segment.server_port == TLS_PORT and any(name in segment.payload for name in sni)


def forge_rst(segment: Segment) -> bytes:
    """The server's RST+ACK to ``segment``, which the client's TCP accepts at once."""
    return forge_reply(segment, RST_ACK)


class OnPathInjector:
    def __init__(self, config: dict[str, Any]) -> None:
        self.iface = str(config["iface"])
        self.reply_iface = str(config["reply_iface"])
        self.sni = frozenset(str(d).lower().encode() for d in config.get("sni", []))
        self.out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.out.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        # Towards the client, whatever the routing table says about the spoofed source.
        self.out.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.reply_iface.encode())
        # ETH_P_ALL, not ETH_P_IP: a packet socket sees what its device sends only if it
        # asked for every protocol; the filter keeps IPv4.
        self.listen = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        attach_filter(self.listen, segment_filter(outgoing=True))
        self.listen.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        self.listen.bind((self.iface, 0))
        self.listen.settimeout(POLL_SECONDS)

    def handle(self, frame: bytes, pkttype: int) -> None:
        # Frames queued before the filter was attached get here too: only what left the hop.
        if pkttype != socket.PACKET_OUTGOING:
            return
        segment = parse_segment(frame)
        if segment is None or not is_targeted(segment, self.sni):
            return
        client = socket.inet_ntoa(segment.client)
        try:
            self.out.sendto(forge_rst(segment), (client, 0))
        except OSError as error:
            print(f"onpath_injector: cannot send to {client}: {error!r}", file=sys.stderr)
            return
        server = socket.inet_ntoa(segment.server)
        print(f"onpath_injector: RST to {client} from {server}:{segment.server_port}", flush=True)

    def serve(self, stopping: Callable[[], bool]) -> None:
        while not stopping():
            try:
                frame, address = self.listen.recvfrom(FRAME_LIMIT)
            except TimeoutError:
                continue
            except OSError as error:
                if error.errno in (errno.ENETDOWN, errno.ENXIO):
                    continue  # the link went down (the lab's shutdown); it comes back
                raise
            self.handle(frame, address[2])

    def close(self) -> None:
        self.listen.close()
        self.out.close()


def main() -> int:
    config = load_config()
    with contextlib.suppress(PermissionError):
        os.nice(-10)  # the RST must leave before the server's answer comes back
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    injector = OnPathInjector(config)
    announce_ready()
    try:
        injector.serve(stop.is_set)
    finally:
        injector.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

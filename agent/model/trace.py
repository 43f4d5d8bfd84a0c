"""Agent model: what the trace test observed (``agent.probes.trace``, ``agent.verdict.trace``).

The trace locates a censor the way CenTrace does: the trigger (the SYN to a blocked address,
the ClientHello naming a blocked SNI, or the request naming a blocked Host) goes out again
and again on fresh connections, with the IP TTL (IPv6 hop limit) set to 1, 2, 3, ...; a
router where the packet dies answers with ICMP time-exceeded, and the censor's reaction (a
reset, a FIN, a blockpage, or silence) first shows at the TTL where the packet first
passes it. The benign swap goes out at every TTL too, so a router that never answers is
told apart from a censor that drops. Last, the trigger goes out once with the normal TTL,
and a capture shows whether the genuine server's answer still arrives after an injected
packet (the injector is then on-path: it cannot drop), and what the injected and the
genuine packets' IP TTL and IP ID were.

Standard library only, as all of ``agent.model``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FULL_TTL",
    "REACTIONS",
    "TRACE_TRIGGERS",
    "TraceAttempt",
    "TraceObservation",
    "TracePacket",
    "TraceReference",
]

TRACE_TRIGGERS = ("sni", "host", "ip")
# The TTL the last attempt goes out with: what the system would use, so the trigger reaches
# the server if nothing stops it.
FULL_TTL = 64

# The trace's failure when it cannot run here: no capture (CAP_NET_RAW, scapy or libpcap
# missing; agent.net.capture.unavailable says which, once, to the person running it).
UNAVAILABLE = "trace_unavailable"

# What came back for one attempt, first thing first:
EXCEEDED = "exceeded"  # a router's ICMP time-exceeded: the packet died at that hop
UNREACHABLE = "unreachable"  # an ICMP destination-unreachable, from a router or the host
RESET = "rst"  # a TCP reset on the flow
FIN = "fin"  # the flow was closed cleanly right after the trigger
DATA = "data"  # bytes came back: a ServerHello, an HTTP response or a blockpage
SYN_ACK = "synack"  # the SYN (an ``ip`` trigger) was answered: the host was reached
SILENT = "none"  # nothing came back within the window
NO_CONNECTION = "noconn"  # sni/host: the connection the trigger rides on could not be opened
REACTIONS = (EXCEEDED, UNREACHABLE, RESET, FIN, DATA, SYN_ACK, SILENT, NO_CONNECTION)
# Reactions that mean the packet got past every router below this TTL and something answered
# for the server: the server itself, or a box speaking for it.
ANSWERS = frozenset((RESET, FIN, DATA, SYN_ACK))
# Packet kinds a capture records on the flow, from the server's address.
PACKET_KINDS = ("synack", "rst", "fin", "data")


@dataclass(frozen=True)
class TracePacket:
    """One packet from the server's address on the attempt's flow, as forensics needs it."""

    kind: str  # one of PACKET_KINDS; a FIN carrying bytes is "data"
    ttl: int  # the IP TTL (IPv6 hop limit) it arrived with
    ip_id: int | None  # IPv4's identification field; None for IPv6
    ms: float  # since the trigger was sent (0 for what came before it, the SYN-ACK)


@dataclass(frozen=True)
class TraceAttempt:
    """One connection: the trigger or the benign swap sent with one TTL."""

    ttl: int
    trigger: bool  # named the target (else the benign swap)
    reaction: str  # one of REACTIONS
    router: str | None = None  # who sent the ICMP, for exceeded and unreachable
    ms: float = 0.0  # from sending to the reaction (the window, when silent)
    status: int | None = None  # an HTTP response's status, when the reaction is data
    fingerprint: str | None = None  # the blockpage fingerprint the data matched
    packets: tuple[TracePacket, ...] = ()  # captured on the flow (the last attempt's only)


@dataclass(frozen=True)
class TraceReference:
    """A plain handshake at the normal TTL whose first answer stands for genuine packets: to
    the same address on the other web port, or to a benign address behind the same routers."""

    address: str
    port: int
    packet: TracePacket | None  # its SYN-ACK or RST; None when nothing answered


@dataclass(frozen=True)
class TraceObservation:
    trigger: str  # one of TRACE_TRIGGERS
    name: str  # the name the trigger carries (the target's address, for ``ip``)
    benign: str  # the swap's name, or for ``ip`` the benign address
    address: str  # the address traced
    port: int
    attempts: tuple[TraceAttempt, ...] = ()  # in the order sent; the full-TTL one last
    references: tuple[TraceReference, ...] = ()
    max_ttl: int = 0  # the highest TTL the trace would have gone to
    packets_sent: int = 0  # trigger and benign packets the trace sent, retransmissions aside
    failure: str | None = None  # why the trace did not run, or broke off


def censored(trigger: TraceAttempt, benign: TraceAttempt) -> bool:
    """Whether the trigger met something at this TTL that the benign swap did not: the probe
    stops on it and the verdict locates the censor with it (one rule for both).

    A reset, a clean close or an ICMP unreachable the benign did not get; bytes where the
    benign's packet died at a router, or a blockpage where it got the page; silence where
    the benign got any answer (a router's or the host's). A SYN-ACK is never a censor's: an
    ``ip`` trigger's benign is another host, which may be nearer or farther."""
    tr, br = trigger.reaction, benign.reaction
    if tr in (RESET, FIN, UNREACHABLE):
        return br != tr
    if tr == DATA:
        if br == DATA:
            return trigger.fingerprint is not None and benign.fingerprint is None
        return br in (EXCEEDED, UNREACHABLE, SILENT)
    if tr == SILENT:
        return br in (EXCEEDED, UNREACHABLE, *ANSWERS)
    return False

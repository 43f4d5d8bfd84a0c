"""Agent model: what the protocol test observed (``agent.probes.protocols``).

The test asks whether a censor lets packets shaped like a protocol through, not whether the
protocol works: each shaped packet goes out once (resent while silent) and waits for the
far end's echo, or for a real QUIC server's answer; beside each goes a benign twin, random
bytes of the same size on the same path, so that a path that loses everything is told
apart from one that drops a shape. The shapes (:data:`SHAPES`):

- ``quic``: a QUIC v1 Initial whose ClientHello names the target;
- ``quic-benign``: the same Initial naming the benign name (the twin that tells a name
  from the protocol);
- ``wireguard``: a WireGuard handshake initiation (type 1, 148 bytes);
- ``openvpn-udp``, ``openvpn-tcp``: an OpenVPN ``P_CONTROL_HARD_RESET_CLIENT_V2``, in a
  datagram, or framed with its length as the first bytes of a TCP connection.

Standard library only, as all of ``agent.model``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["QUIC_SHAPES", "SHAPES", "VPN_SHAPES", "ProtocolObservation", "ProtocolProbe"]

QUIC_SHAPES = ("quic", "quic-benign")
VPN_SHAPES = ("wireguard", "openvpn-udp", "openvpn-tcp")
SHAPES = QUIC_SHAPES + VPN_SHAPES


@dataclass(frozen=True)
class ProtocolProbe:
    """One packet (or TCP exchange) and whether it came back."""

    shape: str  # one of SHAPES
    random: bool  # the benign twin: random bytes as long as ``shape``'s packet
    site: bool  # sent to the target's own address (UDP 443) rather than to the far end
    size: int  # bytes sent (once)
    answered: bool  # an answer came back: the echo, or the QUIC server's reply
    ms: float  # to the answer, or to giving up
    tries: int  # times sent (a datagram is resent while silent)
    failure: str | None  # an ICMP error (connection_refused: the host was reached), a reset


@dataclass(frozen=True)
class ProtocolObservation:
    """The protocol test of one name: its probes to the far end and to the site."""

    name: str  # the target's name, the SNI of the ``quic`` Initials
    benign: str  # the SNI of the ``quic-benign`` ones
    address: str | None = None  # the far end's IP; None when the test could not run
    udp_port: int = 0
    tcp_port: int = 0  # the far end's plain port, for openvpn-tcp
    site_address: str | None = None  # where the target resolved, for the QUIC site probes
    probes: tuple[ProtocolProbe, ...] = ()
    failure: str | None = None  # why the test could not run: no far end, no token

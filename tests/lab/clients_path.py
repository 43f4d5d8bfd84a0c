"""Censor lab: plain clients that look at the path itself (``tests.lab.clients`` runs them).

- ``ttl_probe``: one UDP datagram with a chosen IP TTL (IPv6 hop limit); the ICMP error it
  drew and the address it came from, read from the socket's error queue (IP_RECVERR), as
  ``traceroute`` does: time-exceeded from a router, port-unreachable from the server.
- ``tls_capture``: a TLS handshake while a packet socket on the agent's link records the
  connection's packets both ways, with their IP TTL and IP ID, so a check sees a forged
  RST and whether the server's own answer still came.

Standard library only, independent of netsonde's probes, like the other lab clients.
"""

from __future__ import annotations

import errno
import select
import socket
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any

from tests.lab.fin_injector import ETH_P_ALL  # a socket that sees what the device sends too

ETH_HEADER = 14
TIMEOUT = 2.0
# Linux values, for Pythons whose socket module lacks the names.
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
# struct sock_extended_err: errno, origin, ICMP type, ICMP code, pad, info, data; the
# offending address (SO_EE_OFFENDER) follows it.
SOCK_EXTENDED_ERR = struct.Struct("=IBBBBII")
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3
TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}


def ttl_probe(ip: str, ttl: int, port: int = 33434, wait: float = TIMEOUT) -> dict[str, Any]:
    """The ICMP error a datagram to ip:port with IP TTL ``ttl`` draws, and its source."""
    six = ":" in ip
    with socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        if six:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        sock.connect((ip, port))
        sock.send(b"netsonde lab ttl probe")
        poller = select.poll()
        poller.register(sock, select.POLLERR)
        if not poller.poll(wait * 1000):
            return {"error": "timeout", "icmp_type": None, "icmp_code": None, "source": None}
        _data, ancdata, _flags, _address = sock.recvmsg(512, 512, socket.MSG_ERRQUEUE)
    for _level, _kind, data in ancdata:
        error, origin, icmp_type, icmp_code, _pad, _info, _data = SOCK_EXTENDED_ERR.unpack_from(
            data
        )
        if origin in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
            return {
                "error": errno.errorcode.get(error, str(error)),
                "icmp_type": icmp_type,
                "icmp_code": icmp_code,
                "source": _offender(data[SOCK_EXTENDED_ERR.size :]),
            }
    return {"error": "no ICMP error", "icmp_type": None, "icmp_code": None, "source": None}


def _offender(sockaddr: bytes) -> str:
    """The address of a struct sockaddr_in or sockaddr_in6."""
    if int.from_bytes(sockaddr[:2], "little") == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, sockaddr[8:24])
    return socket.inet_ntop(socket.AF_INET, sockaddr[4:8])


def _packet(frame: bytes, ip: str, start: float) -> dict[str, Any] | None:
    """What a capture keeps of an IPv4 TCP frame to or from ``ip``:443."""
    packet = frame[ETH_HEADER:]
    ipv4 = frame[12:14] == b"\x08\x00"
    if not ipv4 or len(packet) < 40 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_TCP:
        return None
    src, dst = socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20])
    tcp = packet[(packet[0] & 0x0F) * 4 : int.from_bytes(packet[2:4], "big")]
    sport, dport = struct.unpack_from("!HH", tcp)
    if (src, sport) != (ip, 443) and (dst, dport) != (ip, 443):
        return None
    payload = tcp[(tcp[12] >> 4) * 4 :]
    return {
        "ms": round((time.monotonic() - start) * 1000, 1),
        "from_server": src == ip,
        "client_port": dport if src == ip else sport,
        "flags": "".join(name for name, bit in TCP_FLAGS.items() if tcp[13] & bit),
        "ttl": packet[8],
        "ip_id": int.from_bytes(packet[4:6], "big"),
        "length": len(payload),
        "first_byte": payload[0] if payload else None,
    }


def tls_capture(ip: str, sni: str, iface: str, linger: float = 1.0) -> dict[str, Any]:
    """A TLS handshake to ip:443 naming ``sni`` (unverified), and the connection's packets
    seen on ``iface`` until ``linger`` seconds after it ended."""
    capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    capture.bind((iface, 0))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    error, port, start = None, None, time.monotonic()
    try:
        with socket.create_connection((ip, 443), timeout=TIMEOUT) as raw:
            port = raw.getsockname()[1]
            with context.wrap_socket(raw, server_hostname=sni):
                pass
    except OSError as exc:
        name = errno.errorcode.get(exc.errno) if exc.errno is not None else None
        error = "timeout" if isinstance(exc, TimeoutError) else name or type(exc).__name__
    packets = _drain(capture, ip, start, time.monotonic() + linger)
    capture.close()
    return {"error": error, "packets": [p for p in packets if p["client_port"] == port]}


def _drain(capture: socket.socket, ip: str, start: float, deadline: float) -> list[dict[str, Any]]:
    """The frames queued on ``capture`` and those that come until ``deadline``; the time of
    each is when it was read, so only their order is exact."""
    packets = []
    while (left := deadline - time.monotonic()) > 0:
        capture.settimeout(left)
        try:
            frame = capture.recv(65536)
        except TimeoutError:
            break
        if (packet := _packet(frame, ip, start)) is not None:
            packets.append(packet)
    return packets


PATH_OPS: dict[str, Callable[..., dict[str, Any]]] = {
    "ttl_probe": ttl_probe,
    "tls_capture": tls_capture,
}

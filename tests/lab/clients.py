"""Censor lab: plain clients that look at the lab from inside a namespace.

Run as ``python -m tests.lab.clients OP JSON-ARGS`` inside the agent (or net)
namespace; prints one JSON object. Built on the standard library and
dnspython only, and deliberately independent of netsonde's own probes: the
lab must be known to be right before netsonde is measured against it. Errors
are reported as raw errno names (ECONNRESET, ...) or ``timeout``/``eof``,
not in netsonde's failure vocabulary.
"""

from __future__ import annotations

import errno
import http.client
import json
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

import dns.exception
import dns.message
import dns.rcode
import dns.resolver

from tests.lab.clients_path import PATH_OPS

TIMEOUT = 2.0
# Linux values; the socket module lacks these names on Python 3.11.
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_TTL_CMSG = getattr(socket, "IP_TTL", 2)
TITLE_RE = re.compile(rb"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _error_name(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"cert_verify:{exc.verify_message}"
    if isinstance(exc, ssl.SSLEOFError | http.client.RemoteDisconnected):
        return "eof"
    if isinstance(exc, ssl.SSLError):
        return f"ssl:{exc.reason}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__


def dns_udp(server: str, name: str, window: float = 0.5, qtype: str = "A") -> dict[str, Any]:
    """One query over UDP; every reply that arrives within the window, with its IP TTL."""
    query = dns.message.make_query(name, qtype)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    sock.settimeout(TIMEOUT)
    start = time.monotonic()
    sock.sendto(query.to_wire(), (server, 53))
    replies: list[dict[str, Any]] = []
    deadline = start + TIMEOUT
    while time.monotonic() < deadline:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            data, ancdata, _flags, source = sock.recvmsg(4096, socket.CMSG_SPACE(4))
        except TimeoutError:
            break
        ttl = next(
            (int.from_bytes(d[:4], sys.byteorder) for lvl, typ, d in ancdata if typ == IP_TTL_CMSG),
            None,
        )
        try:
            reply = dns.message.from_wire(data)
        except dns.exception.DNSException:
            continue
        if reply.id != query.id:
            continue
        answers = [r.to_text() for rrset in reply.answer for r in rrset]
        replies.append(
            {
                "source": source[0],
                "ms": round((time.monotonic() - start) * 1000, 1),
                "ip_ttl": ttl,
                "rcode": dns.rcode.to_text(reply.rcode()),
                "answers": answers,
            }
        )
        if len(replies) == 1:
            deadline = time.monotonic() + window
    return {"replies": replies}


def dns_system(name: str, qtype: str = "A") -> dict[str, Any]:
    """Resolve through /etc/resolv.conf, keeping NXDOMAIN, SERVFAIL and timeouts distinct."""
    resolver = dns.resolver.Resolver()
    resolver.lifetime = TIMEOUT
    try:
        answer = resolver.resolve(name, qtype)
    except dns.resolver.NXDOMAIN:
        return {"rcode": "NXDOMAIN", "answers": [], "nameservers": resolver.nameservers}
    except dns.resolver.NoAnswer:
        return {"rcode": "NOERROR", "answers": [], "nameservers": resolver.nameservers}
    except dns.resolver.LifetimeTimeout:
        return {"rcode": "timeout", "answers": [], "nameservers": resolver.nameservers}
    except dns.resolver.NoNameservers:
        return {"rcode": "SERVFAIL", "answers": [], "nameservers": resolver.nameservers}
    return {"rcode": "NOERROR", "answers": [r.to_text() for r in answer]}


def tcp(ip: str, port: int) -> dict[str, Any]:
    try:
        with socket.create_connection((ip, port), timeout=TIMEOUT):
            return {"error": None}
    except OSError as exc:
        return {"error": _error_name(exc)}


def _issuer(der: bytes | None) -> str | None:
    if der is None:
        return None
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)
    names = cert.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    value = names[0].value if names else cert.issuer.rfc4514_string()
    return value if isinstance(value, str) else value.decode()


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def tls(ip: str, sni: str, ca_file: str | None = None) -> dict[str, Any]:
    """A TLS handshake to ip:443 naming ``sni``; verified against ``ca_file`` if given."""
    context = _tls_context(ca_file)
    try:
        with (
            socket.create_connection((ip, 443), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=sni) as conn,
        ):
            return {
                "error": None,
                "version": conn.version(),
                "issuer": _issuer(conn.getpeercert(binary_form=True)),
            }
    except OSError as exc:
        return {"error": _error_name(exc)}


def http_get(
    ip: str, host: str, path: str = "/", tls_sni: str | None = None, ca_file: str | None = None
) -> dict[str, Any]:
    """GET with an explicit Host header, over plain TCP or TLS (when tls_sni is given)."""
    connection: http.client.HTTPConnection
    if tls_sni is None:
        connection = http.client.HTTPConnection(ip, 80, timeout=TIMEOUT)
    else:
        context = _tls_context(ca_file)
        context.check_hostname = False if ca_file is None else context.check_hostname
        connection = _SNIConnection(ip, tls_sni, context)
    start = time.monotonic()
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return {"error": _error_name(exc)}
    finally:
        connection.close()
    elapsed = time.monotonic() - start
    match = TITLE_RE.search(body)
    return {
        "error": None,
        "status": response.status,
        "location": response.getheader("Location"),
        "title": match.group(1).decode(errors="replace").strip() if match else None,
        "length": len(body),
        "body_head": body[:2048].decode(errors="replace"),
        "seconds": round(elapsed, 3),
        "rate_bps": round(len(body) * 8 / elapsed) if elapsed > 0 else None,
    }


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to an IP, with an SNI chosen independently of the address."""

    def __init__(self, ip: str, sni: str, context: ssl.SSLContext) -> None:
        super().__init__(ip, 443, timeout=TIMEOUT, context=context)
        self._sni = sni
        self._tls_context = context

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock = self._tls_context.wrap_socket(raw, server_hostname=self._sni)


def _timed_body(conn: socket.socket, size: int, window: float) -> dict[str, Any]:
    """Reads an answer's body for ``window`` seconds after its first byte."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(65536)
        if not chunk:
            return {"error": "eof"}
        head += chunk
    first = last = time.monotonic()
    got, skip = 0, len(head.partition(b"\r\n\r\n")[2])
    conn.settimeout(window)
    try:
        while last - first < window and skip + got < size:
            chunk = conn.recv(65536)
            if not chunk:
                break
            got, last = got + len(chunk), time.monotonic()
    except TimeoutError:
        pass  # the window ended while waiting for more
    elapsed = last - first
    return {
        "error": None,
        "bytes": skip + got,
        "seconds": round(elapsed, 3),
        "rate_bps": round(got * 8 / elapsed) if elapsed > 0 and got else None,
    }


def rate(
    ip: str, host: str, size: int, tls_sni: str | None = None, window: float = 1.5
) -> dict[str, Any]:
    """GET /bytes/SIZE with ``host`` (over TLS naming ``tls_sni`` if given, unverified) and
    read for ``window`` seconds after the first body byte: the goodput after the first read,
    in bits per second, as the agent's throttle probe measures it."""
    request = f"GET /bytes/{size} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection((ip, 80 if tls_sni is None else 443), TIMEOUT) as raw:
            conn = raw
            if tls_sni is not None:
                conn = _tls_context(None).wrap_socket(raw, server_hostname=tls_sni)
            conn.sendall(request.encode())
            return _timed_body(conn, size, window)
    except OSError as exc:
        return {"error": _error_name(exc)}


def udp(ip: str, port: int, payload: str, tries: int = 2, wait: float = 1.0) -> dict[str, Any]:
    """Sends the hex ``payload`` from a fresh socket, again while silent; the first answer's
    length, or the error (ECONNREFUSED: the host said nothing listens, so it arrived)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((ip, port))
        sock.settimeout(wait)
        for _ in range(tries):
            try:
                sock.send(bytes.fromhex(payload))
                return {"error": None, "answer": len(sock.recv(65536))}
            except TimeoutError:
                continue
            except OSError as exc:
                return {"error": _error_name(exc), "answer": None}
    return {"error": "timeout", "answer": None}


def tcp_send(ip: str, port: int, payload: str) -> dict[str, Any]:
    """Connects, sends the hex ``payload`` as the first bytes and reads what comes back."""
    try:
        with socket.create_connection((ip, port), TIMEOUT) as sock:
            sock.sendall(bytes.fromhex(payload))
            data = sock.recv(65536)
            return {"error": None if data else "eof", "received": len(data)}
    except OSError as exc:
        return {"error": _error_name(exc), "received": 0}


OPS: dict[str, Callable[..., dict[str, Any]]] = {
    "dns_udp": dns_udp,
    "dns_system": dns_system,
    "tcp": tcp,
    "tls": tls,
    "http_get": http_get,
    "rate": rate,
    "udp": udp,
    "tcp_send": tcp_send,
    **PATH_OPS,  # ttl_probe, tls_capture
}


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in OPS:
        raise SystemExit(f"usage: python -m tests.lab.clients {{{','.join(OPS)}}} JSON-ARGS")
    print(json.dumps(OPS[sys.argv[1]](**json.loads(sys.argv[2]))))


if __name__ == "__main__":
    main()

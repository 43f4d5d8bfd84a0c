"""Agent layer 1, net: the failure vocabulary and the one place exceptions become failures.

Every primitive reports what went wrong as a short string from OONI's failure
vocabulary (https://github.com/ooni/spec/blob/master/data-formats/df-007-errors.md),
or None for success. Exceptions raised by sockets, ssl, asyncio and dnspython are
translated here and nowhere else: primitives wrap their network work in
:func:`capture`, which stores :func:`classify`'s answer in a holder instead of
letting the exception escape. Anything that is not a network-shaped exception
(a bug, a bad argument) is deliberately not caught.
"""

from __future__ import annotations

import errno
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dns.exception
import dns.rcode

CONNECTION_REFUSED = "connection_refused"
CONNECTION_RESET = "connection_reset"
CONNECTION_ABORTED = "connection_aborted"
GENERIC_TIMEOUT = "generic_timeout_error"
EOF = "eof_error"
HOST_UNREACHABLE = "host_unreachable"
NETWORK_UNREACHABLE = "network_unreachable"
DNS_NXDOMAIN = "dns_nxdomain_error"
DNS_SERVFAIL = "dns_server_failure"
DNS_REFUSED = "dns_refused_error"
DNS_NO_ANSWER = "dns_no_answer"
SSL_UNKNOWN_AUTHORITY = "ssl_unknown_authority"
SSL_INVALID_HOSTNAME = "ssl_invalid_hostname"
SSL_INVALID_CERTIFICATE = "ssl_invalid_certificate"
SSL_FAILED_HANDSHAKE = "ssl_failed_handshake"
UNKNOWN_PREFIX = "unknown_failure: "

# Why a measurement has no control view; not OONI names, since OONI has no such notion.
NO_CONTROL = "no_control"  # no collector was configured
CONTROL_UNREACHABLE = "control_unreachable"
CONTROL_TIMEOUT = "control_timeout"
CONTROL_BAD_RESPONSE = "control_bad_response"
CONTROL_TLS_ERROR = "control_tls_error"
CONTROL_HTTP_PREFIX = "control_http_"  # followed by the HTTP status

# OpenSSL X509_V_ERR_* codes that mean "no trusted issuer was found": 2 unable to get
# issuer cert, 18 self-signed leaf, 19 self-signed cert in chain, 20 unable to get local
# issuer, 21 unable to verify leaf signature. OONI calls all of these unknown authority.
_UNKNOWN_AUTHORITY_CODES = frozenset({2, 18, 19, 20, 21})
# 62 hostname mismatch, 64 IP address mismatch.
_INVALID_HOSTNAME_CODES = frozenset({62, 64})

_ERRNO_FAILURES = {
    errno.ECONNREFUSED: CONNECTION_REFUSED,
    errno.ECONNRESET: CONNECTION_RESET,
    # A write into a connection the peer already reset surfaces as EPIPE: same cause.
    errno.EPIPE: CONNECTION_RESET,
    errno.ECONNABORTED: CONNECTION_ABORTED,
    errno.ETIMEDOUT: GENERIC_TIMEOUT,
    errno.EHOSTUNREACH: HOST_UNREACHABLE,
    errno.ENETUNREACH: NETWORK_UNREACHABLE,
}

_RCODE_FAILURES: dict[int, str] = {
    dns.rcode.NXDOMAIN: DNS_NXDOMAIN,
    dns.rcode.SERVFAIL: DNS_SERVFAIL,
    dns.rcode.REFUSED: DNS_REFUSED,
}


class ProtocolError(Exception):
    """The peer answered, but not in the protocol we spoke (a malformed HTTP response)."""


# What capture() turns into a failure. asyncio's IncompleteReadError is an EOFError,
# TimeoutError and every ssl error are OSErrors.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    dns.exception.DNSException,
    ProtocolError,
)


def unknown(detail: str) -> str:
    return f"{UNKNOWN_PREFIX}{detail}"


def certificate_failure(verify_code: int) -> str:
    """The failure for an OpenSSL certificate verification code."""
    if verify_code in _UNKNOWN_AUTHORITY_CODES:
        return SSL_UNKNOWN_AUTHORITY
    if verify_code in _INVALID_HOSTNAME_CODES:
        return SSL_INVALID_HOSTNAME
    return SSL_INVALID_CERTIFICATE


def rcode_failure(rcode: int, has_addresses: bool) -> str | None:
    """The failure for a DNS response code; NOERROR without addresses is a failure too."""
    if rcode == dns.rcode.NOERROR:
        return None if has_addresses else DNS_NO_ANSWER
    failure = _RCODE_FAILURES.get(rcode)
    return failure or unknown(f"dns rcode {dns.rcode.to_text(dns.rcode.Rcode.make(rcode))}")


def classify(exc: BaseException) -> str:
    """Map an exception raised by network I/O to its failure string."""
    # Order matters: ssl errors and TimeoutError are OSErrors, so the specific
    # cases must be decided before the errno table is consulted.
    if isinstance(exc, TimeoutError | dns.exception.Timeout):
        return GENERIC_TIMEOUT
    if isinstance(exc, ssl.SSLCertVerificationError):
        return certificate_failure(exc.verify_code)
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | EOFError):
        return EOF
    if isinstance(exc, ssl.SSLError):
        return SSL_FAILED_HANDSHAKE
    if isinstance(exc, ConnectionResetError):
        return CONNECTION_RESET
    if isinstance(exc, ConnectionRefusedError):
        return CONNECTION_REFUSED
    if isinstance(exc, OSError):
        if exc.errno in _ERRNO_FAILURES:
            return _ERRNO_FAILURES[exc.errno]
        if exc.errno is not None:
            return unknown(errno.errorcode.get(exc.errno, str(exc.errno)))
        return unknown(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ProtocolError):
        return unknown(str(exc))
    return unknown(type(exc).__name__)


@dataclass
class Outcome:
    """Holder filled in by :func:`capture`: None while nothing went wrong."""

    failure: str | None = None


@contextmanager
def capture() -> Iterator[Outcome]:
    """Run network I/O; a network exception ends the block and lands in ``outcome.failure``."""
    outcome = Outcome()
    try:
        yield outcome
    except NETWORK_ERRORS as exc:
        outcome.failure = classify(exc)

"""Agent net: the one place network exceptions become failure strings.

Exceptions raised by sockets, ssl, asyncio and dnspython are translated here and nowhere
else: primitives wrap their network work in :func:`capture`, which stores
:func:`classify`'s answer in a holder instead of letting the exception escape. Anything
that is not a network-shaped exception (a bug, a bad argument) is deliberately not caught.
The strings themselves are ``agent.model.failures``.
"""

from __future__ import annotations

import errno
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dns.exception
import dns.rcode

from agent.model.failures import (
    CONNECTION_ABORTED,
    CONNECTION_REFUSED,
    CONNECTION_RESET,
    DNS_NO_ANSWER,
    DNS_NXDOMAIN,
    DNS_REFUSED,
    DNS_SERVFAIL,
    EOF,
    GENERIC_TIMEOUT,
    HOST_UNREACHABLE,
    NETWORK_UNREACHABLE,
    SSL_FAILED_HANDSHAKE,
    certificate_failure,
    unknown,
)

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

"""The failure vocabulary: exceptions map to OONI failure strings, in one place."""

from __future__ import annotations

import asyncio
import errno
import ssl

import dns.exception
import dns.rcode
import pytest

from agent.model import failures
from agent.net import errors


def _cert_error(code: int) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_code = code
    exc.verify_message = "test"
    return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), "generic_timeout_error"),
        (dns.exception.Timeout(), "generic_timeout_error"),
        (OSError(errno.ETIMEDOUT, "timed out"), "generic_timeout_error"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "connection_reset"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connection_refused"),
        (OSError(errno.ECONNRESET, "reset"), "connection_reset"),
        (OSError(errno.ECONNREFUSED, "refused"), "connection_refused"),
        (BrokenPipeError(errno.EPIPE, "pipe"), "connection_reset"),
        (OSError(errno.EHOSTUNREACH, "no route"), "host_unreachable"),
        (OSError(errno.ENETUNREACH, "unreachable"), "network_unreachable"),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), "eof_error"),
        (ssl.SSLZeroReturnError(6, "closed"), "eof_error"),
        (asyncio.IncompleteReadError(b"partial", 10), "eof_error"),
        (EOFError("closed"), "eof_error"),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version"), "ssl_failed_handshake"),
        (_cert_error(20), "ssl_unknown_authority"),
        (_cert_error(19), "ssl_unknown_authority"),
        (_cert_error(2), "ssl_unknown_authority"),
        (_cert_error(18), "ssl_unknown_authority"),
        (_cert_error(62), "ssl_invalid_hostname"),
        (_cert_error(10), "ssl_invalid_certificate"),
        (OSError(errno.EACCES, "denied"), "unknown_failure: EACCES"),
        (
            errors.ProtocolError("malformed http status line"),
            "unknown_failure: malformed http status line",
        ),
        (dns.exception.FormError(), "unknown_failure: FormError"),
    ],
)
def test_classify(exc: BaseException, expected: str) -> None:
    assert errors.classify(exc) == expected


@pytest.mark.parametrize(
    ("rcode", "has_addresses", "expected"),
    [
        (dns.rcode.NOERROR, True, None),
        (dns.rcode.NOERROR, False, "dns_no_answer"),
        (dns.rcode.NXDOMAIN, False, "dns_nxdomain_error"),
        (dns.rcode.SERVFAIL, False, "dns_server_failure"),
        (dns.rcode.REFUSED, False, "dns_refused_error"),
        (dns.rcode.NOTIMP, False, "unknown_failure: dns rcode NOTIMP"),
    ],
)
def test_rcode_failure(rcode: int, has_addresses: bool, expected: str | None) -> None:
    assert errors.rcode_failure(rcode, has_addresses) == expected


def _reset() -> None:
    raise ConnectionResetError(errno.ECONNRESET, "reset")


def test_capture_records_network_errors() -> None:
    with errors.capture() as outcome:
        _reset()
    assert outcome.failure == "connection_reset"
    with errors.capture() as clean:
        pass
    assert clean.failure is None


def test_capture_lets_bugs_through() -> None:
    with pytest.raises(KeyError), errors.capture():
        raise KeyError("a bug, not the network")


def test_vocabulary_is_ooni_names() -> None:
    names = {
        failures.CONNECTION_REFUSED,
        failures.CONNECTION_RESET,
        failures.GENERIC_TIMEOUT,
        failures.EOF,
        failures.DNS_NXDOMAIN,
        failures.DNS_SERVFAIL,
        failures.SSL_UNKNOWN_AUTHORITY,
    }
    assert names == {
        "connection_refused",
        "connection_reset",
        "generic_timeout_error",
        "eof_error",
        "dns_nxdomain_error",
        "dns_server_failure",
        "ssl_unknown_authority",
    }

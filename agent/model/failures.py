"""Agent model: the failure vocabulary, the strings every observation reports failures in.

What went wrong is a short string from OONI's failure vocabulary
(https://github.com/ooni/spec/blob/master/data-formats/df-007-errors.md), or None for
success. Standard library only: the verdict, the wire format and the collector compare
these strings without loading the code that produces them. Exceptions become these
strings in one place, ``agent.net.errors``.
"""

from __future__ import annotations

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
# No enrolled identity to sign the request with: the collector serves enrolled agents only.
CONTROL_UNAUTHENTICATED = "control_unauthenticated"
# The control's resolver answered only addresses it may not reach (loopback, LAN, metadata
# services); they are dropped from the answer it returns, and this stands for them.
DNS_NON_PUBLIC_ANSWER = "dns_non_public_answer"
# A redirect chain that no browser would finish (agent.verdict.chain): a Location that is no
# http(s) URL, a URL met twice, or more redirects than a browser follows.
REDIRECT_BAD_LOCATION = "redirect_bad_location"
REDIRECT_LOOP = "redirect_loop"
REDIRECT_LIMIT = "redirect_limit"
# Why an upload failed, for the status and the logs. The first four are
# ``agent.api.errors.request_failure(exc, "upload")``'s answers, as the control's are.
UPLOAD_UNREACHABLE = "upload_unreachable"
UPLOAD_TIMEOUT = "upload_timeout"
UPLOAD_TLS_ERROR = "upload_tls_error"
UPLOAD_BAD_RESPONSE = "upload_bad_response"
UPLOAD_RATE_LIMITED = "upload_rate_limited"
UPLOAD_UNAUTHORIZED = "upload_unauthorized"  # 401: the collector does not know this agent
UPLOAD_REVOKED = "upload_revoked"  # 403
UPLOAD_HTTP_PREFIX = "upload_http_"  # followed by the status

# OpenSSL X509_V_ERR_* codes that mean "no trusted issuer was found": 2 unable to get
# issuer cert, 18 self-signed leaf, 19 self-signed cert in chain, 20 unable to get local
# issuer, 21 unable to verify leaf signature. OONI calls all of these unknown authority.
_UNKNOWN_AUTHORITY_CODES = frozenset({2, 18, 19, 20, 21})
# 62 hostname mismatch, 64 IP address mismatch.
_INVALID_HOSTNAME_CODES = frozenset({62, 64})


def unknown(detail: str) -> str:
    return f"{UNKNOWN_PREFIX}{detail}"


def certificate_failure(verify_code: int) -> str:
    """The failure for an OpenSSL certificate verification code."""
    if verify_code in _UNKNOWN_AUTHORITY_CODES:
        return SSL_UNKNOWN_AUTHORITY
    if verify_code in _INVALID_HOSTNAME_CODES:
        return SSL_INVALID_HOSTNAME
    return SSL_INVALID_CERTIFICATE

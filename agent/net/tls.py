"""Agent net: a TLS handshake with a chosen SNI on an already-open TCP connection.

How the certificate is judged, and why this way: a censor's interceptor presents a
certificate that does not validate, and that is exactly when we most want the
version, cipher and certificate it served. With verification enforced OpenSSL
aborts such a handshake, and a second connection is not allowed (it could take a
different path, or trip the censor again). So the handshake always runs with
CERT_NONE, on memory BIOs driven over the raw socket (asyncio's own SSL layer
reports a FIN mid-handshake as a reset, and eof vs reset is evidence). Afterwards the
chain the server sent is validated separately with ``cryptography.x509.verification``
against the system store plus ``ca_file``, for hostname = SNI.

The server's whole chain comes from ``SSLObject.get_unverified_chain()``: public from
Python 3.13, and present on the private ``_sslobj`` since 3.10, which is what 3.11
uses. Should neither exist, only the leaf is known and intermediates are missing, so a
valid chain may then be reported as ``ssl_unknown_authority``. ``leaf_sha256`` is the
leaf's hash (what a control comparison keys on); ``chain_sha256`` hashes the whole chain.

The verifier follows the Web PKI profile, relaxed for end-entity extension
criticality (OpenSSL ignores it too, and private CAs such as trustme's mark SAN and
EKU critical), with EKU, if present, required to allow serverAuth.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import hashlib
import re
import ssl
import time
import warnings
from typing import Any

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from agent.model import failures
from agent.model.observations import TLSHandshake
from agent.net.errors import capture
from agent.net.tcp import RECV_SIZE, TCPStream, elapsed_ms

_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
_DER = 2  # _ssl.ENCODING_DER


class TLSStream:
    """TLS over a TCPStream, on memory BIOs: satisfies agent.net.tcp.Stream."""

    def __init__(
        self, tcp: TCPStream, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO
    ) -> None:
        self.tcp = tcp
        self.tls = tls
        self._incoming = incoming
        self._outgoing = outgoing

    async def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            await self.tcp.send(pending)

    async def _fill(self) -> None:
        data = await self.tcp.recv(RECV_SIZE)
        if data:
            self._incoming.write(data)
        else:
            # ssl then raises SSLEOFError (no close_notify) or SSLZeroReturnError.
            self._incoming.write_eof()

    async def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
            else:
                # TLS 1.3: the client Finished is still in the buffer.
                await self._flush()
                return

    async def send(self, data: bytes) -> None:
        self.tls.write(data)
        await self._flush()

    async def recv(self, size: int = RECV_SIZE) -> bytes:
        while True:
            try:
                return self.tls.read(size)
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()

    def close(self) -> None:
        self.tcp.close()


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def _peer_chain(tls: ssl.SSLObject) -> list[bytes]:
    getter: Any = getattr(tls, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        chain = getter() or []
        return [cert if isinstance(cert, bytes) else cert.public_bytes(_DER) for cert in chain]
    leaf = tls.getpeercert(binary_form=True)
    return [leaf] if leaf else []


@functools.lru_cache(maxsize=8)
def _roots(ca_file: str | None) -> tuple[x509.Certificate, ...]:
    """The system store plus ``ca_file``, parsed once per process."""
    paths = [ssl.get_default_verify_paths().cafile, ca_file]
    roots: list[x509.Certificate] = []
    for path in paths:
        if not path:
            continue
        try:
            with open(path, "rb") as handle:
                pem = handle.read()
        except FileNotFoundError:
            continue
        for block in _PEM_RE.findall(pem):
            try:
                with warnings.catch_warnings():
                    # Old roots with non-positive serials still anchor chains today.
                    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                    roots.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                # A store entry cryptography cannot parse cannot anchor a chain either.
                continue
    return tuple(roots)


def _eku_allows_server_auth(
    _policy: Policy, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None
) -> None:
    if eku is None:
        return
    if ExtendedKeyUsageOID.SERVER_AUTH not in eku and (
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku
    ):
        raise ValueError("certificate is not for server authentication")


def _verifies(
    roots: Store, leaf: x509.Certificate, rest: list[x509.Certificate], name: str
) -> bool:
    ee_policy = (
        ExtensionPolicy.permit_all()
        .require_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
        .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _eku_allows_server_auth)
    )
    verifier = (
        PolicyBuilder()
        .store(roots)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
        .build_server_verifier(x509.DNSName(name))
    )
    try:
        verifier.verify(leaf, rest)
    except VerificationError:
        return False
    return True


def _own_name(leaf: x509.Certificate) -> str | None:
    """A name the leaf itself claims, to tell a hostname mismatch from a bad chain."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    for name in san.value.get_values_for_type(x509.DNSName):
        return name.replace("*.", "wildcard-probe.", 1)
    return None


def validate(chain: list[bytes], sni: str, ca_file: str | None) -> str | None:
    """None if the chain validates for ``sni``, else the failure naming why not."""
    if not chain:
        return failures.SSL_INVALID_CERTIFICATE
    try:
        certs = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError:
        return failures.SSL_INVALID_CERTIFICATE
    leaf, rest = certs[0], certs[1:]
    now = datetime.datetime.now(datetime.UTC)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        return failures.SSL_INVALID_CERTIFICATE
    roots = _roots(ca_file)
    store = Store(list(roots))
    if _verifies(store, leaf, rest, sni):
        return None
    own = _own_name(leaf)
    if own is not None and _verifies(store, leaf, rest, own):
        return failures.SSL_INVALID_HOSTNAME
    anchors = {root.subject for root in roots}
    if not any(cert.issuer in anchors or cert.subject in anchors for cert in certs):
        return failures.SSL_UNKNOWN_AUTHORITY
    return failures.SSL_INVALID_CERTIFICATE


def _issuer(der: bytes) -> str | None:
    try:
        name = x509.load_der_x509_certificate(der).issuer
    except ValueError:
        return None
    organizations = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    value = organizations[0].value if organizations else name.rfc4514_string()
    return value if isinstance(value, str) else value.decode(errors="replace")


async def handshake(
    tcp: TCPStream, sni: str, *, ca_file: str | None = None, timeout: float = 5.0
) -> tuple[TLSHandshake, TLSStream | None]:
    """Handshake naming ``sni`` on ``tcp``; the TLS stream is returned only on success.

    On failure the TCP connection is closed, since it is of no further use.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = _context().wrap_bio(incoming, outgoing, server_hostname=sni)
    stream = TLSStream(tcp, tls, incoming, outgoing)
    start = time.monotonic()
    with capture() as outcome:
        async with asyncio.timeout(timeout):
            await stream.handshake()
    ms = elapsed_ms(start)
    if outcome.failure is not None:
        tcp.close()
        return TLSHandshake.failed(sni, ms, outcome.failure), None
    chain = _peer_chain(tls)
    validation_failure = validate(chain, sni, ca_file)
    cipher = tls.cipher()
    observation = TLSHandshake(
        sni=sni,
        version=tls.version(),
        cipher=cipher[0] if cipher else None,
        alpn=tls.selected_alpn_protocol(),
        leaf_sha256=hashlib.sha256(chain[0]).hexdigest() if chain else None,
        chain_sha256=hashlib.sha256(b"".join(chain)).hexdigest() if chain else None,
        chain_length=len(chain),
        issuer=_issuer(chain[0]) if chain else None,
        validated=validation_failure is None,
        validation_failure=validation_failure,
        ms=ms,
        failure=None,
    )
    return observation, stream

"""Collector far end: its files, made on first start and kept in the collector's state directory.

- ``farend.secret``: the key the far-end tokens are signed with (``collector.farend.tokens``).
  The collector that hands out tokens and the far end that checks them must hold the same
  file: copy it when the far end runs on another host (``netsonde-collector farend``).
- ``farend-tls.pem``: the self-signed certificate the far end's TLS port presents, whatever
  SNI the agent sends, and its key, in one file so that it is made in one step. Agents do
  not validate it: the throttle test is about what a censor does to the handshake's name,
  not about whom the agent talks to.

Files are created with mode 0600, atomically, so two processes starting at once end with
one secret.
"""

from __future__ import annotations

import datetime
import os
import secrets
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from collector.farend import FarendError

__all__ = ["SECRET_FILE", "TLS_FILE", "FarendFileError", "load_secret", "tls_context"]

SECRET_FILE = "farend.secret"
TLS_FILE = "farend-tls.pem"
_SECRET_BYTES = 32
_CERT_DAYS = 3650


class FarendFileError(FarendError):
    """A far-end file that cannot be read or made; the message names it."""


def _write_new(path: Path, data: bytes) -> None:
    """Writes ``path`` unless it exists (then leaves it), never half-written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.link(tmp, path)  # fails if another process made it first: theirs stays
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def load_secret(directory: Path) -> bytes:
    """The token secret in ``directory``, made if there is none."""
    path = directory / SECRET_FILE
    try:
        if not path.exists():
            _write_new(path, secrets.token_hex(_SECRET_BYTES).encode() + b"\n")
        text = path.read_text(encoding="ascii").strip()
        return bytes.fromhex(text)
    except (OSError, ValueError) as exc:
        raise FarendFileError(f"far-end secret {path}: {exc}") from None


def _self_signed() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netsonde far end")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=_CERT_DAYS))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def tls_context(directory: Path) -> ssl.SSLContext:
    """A server context with the far end's certificate, made if there is none; any SNI."""
    path = directory / TLS_FILE
    try:
        if not path.exists():
            _write_new(path, _self_signed())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(path)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise FarendFileError(f"far-end certificate {path}: {exc}") from None
    context.set_alpn_protocols(["http/1.1"])
    return context

"""Agent API: requests signed with the agent's key, for the endpoints only agents may use.

An enrolled agent proves who it is on each request with three headers: its id, the time
(Unix ms), and an Ed25519 signature over a domain string, the method, the path, the id, the
time and the body's SHA-256. The collector checks the signature against the key the agent
enrolled with and the time against its own clock (:data:`MAX_SKEW_MS` either way), so a
request cannot be forged, moved to another path or body, or replayed beyond that window.
The domain string keeps these signatures apart from batch signatures (``agent.wire.batch``),
made with the same key. Nothing here is stored, so every collector process behind a load
balancer can check a request on its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.api.errors import CollectorError

__all__ = [
    "AGENT_HEADER",
    "MAX_SKEW_MS",
    "SIGNATURE_HEADER",
    "TIME_HEADER",
    "AuthError",
    "Credential",
    "claimed_agent",
    "signed_headers",
    "verify_request",
]

AGENT_HEADER = "X-Netsonde-Agent"
TIME_HEADER = "X-Netsonde-Time"
SIGNATURE_HEADER = "X-Netsonde-Signature"
MAX_SKEW_MS = 300_000
MAX_AGENT_ID = 64
_DOMAIN = b"netsonde request v1\n"
_SIGNATURE_SIZE = 64


class AuthError(CollectorError):
    """A request whose agent credential is missing or does not verify; the message says
    which, for the collector's 401 and the agent's log."""


@dataclass(frozen=True)
class Credential:
    """An enrolled agent's id and key, what a signed request is made with."""

    agent_id: str
    key: Ed25519PrivateKey = field(repr=False)


def _message(agent_id: str, method: str, path: str, time_ms: int, body: bytes) -> bytes:
    head = f"{method.upper()}\n{path}\n{agent_id}\n{time_ms}\n".encode()
    return _DOMAIN + head + hashlib.sha256(body).digest()


def signed_headers(
    credential: Credential, method: str, path: str, body: bytes, now_ms: int | None = None
) -> dict[str, str]:
    """The headers that authenticate one request of ``method`` to ``path`` with ``body``."""
    time_ms = int(time.time() * 1000) if now_ms is None else now_ms
    signature = credential.key.sign(_message(credential.agent_id, method, path, time_ms, body))
    return {
        AGENT_HEADER: credential.agent_id,
        TIME_HEADER: str(time_ms),
        SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
    }


def claimed_agent(headers: Mapping[str, str]) -> str:
    """The agent id a request claims, to look up its key; AuthError if there is none."""
    agent_id = headers.get(AGENT_HEADER, "")
    if not agent_id or len(agent_id) > MAX_AGENT_ID or not agent_id.isascii():
        raise AuthError(f"this endpoint is for enrolled agents: no valid {AGENT_HEADER} header")
    return agent_id


def verify_request(
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    public_key: Ed25519PublicKey,
    now_ms: int | None = None,
) -> None:
    """Raises AuthError unless the headers sign this request with ``public_key``'s key,
    at a time within :data:`MAX_SKEW_MS` of ``now_ms``."""
    agent_id = claimed_agent(headers)
    text = headers.get(TIME_HEADER, "")
    if not (text.isascii() and text.isdigit() and len(text) <= 15):
        raise AuthError(f"no valid {TIME_HEADER} header")
    time_ms = int(text)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now - time_ms) > MAX_SKEW_MS:
        raise AuthError(f"the request's time is over {MAX_SKEW_MS // 1000} s from the collector's")
    try:
        signature = base64.b64decode(headers.get(SIGNATURE_HEADER, ""), validate=True)
    except (binascii.Error, ValueError):
        raise AuthError(f"no valid {SIGNATURE_HEADER} header") from None
    if len(signature) != _SIGNATURE_SIZE:
        raise AuthError(f"no valid {SIGNATURE_HEADER} header")
    try:
        public_key.verify(signature, _message(agent_id, method, path, time_ms, body))
    except InvalidSignature:
        raise AuthError("the request's signature does not verify with the agent's key") from None

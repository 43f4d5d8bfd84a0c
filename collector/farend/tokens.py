"""Collector far end: the tokens that let an enrolled agent use the far end.

The collector's API hands a token to an agent that signed its request (``agent.api.auth``);
the far end checks it with the shared secret alone, without the database, so it can run on
another host. A token names the agent and its expiry and carries an HMAC-SHA256 of both:
``ns1.<agent id, base64url>.<expiry, Unix s>.<MAC, base64url>``. Whoever holds the secret
can mint tokens, so it is kept like a key (``collector.farend.files``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

__all__ = ["TokenError", "TokenSigner"]

_PREFIX = "ns1"
_MAC_BYTES = 16
MAX_AGENT_ID = 64
MAX_TOKEN = 512  # agent.model.farend's bound on what an agent accepts


class TokenError(ValueError):
    """A token that is malformed, forged or expired; the message says which."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Issues and checks far-end tokens with one secret."""

    def __init__(self, secret: bytes, ttl: float = 600.0) -> None:
        if len(secret) < 16:
            raise ValueError("the far end's secret must be at least 16 bytes")
        self._secret = secret
        self.ttl = ttl

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._secret, body.encode("ascii"), hashlib.sha256).digest()
        return _b64(digest[:_MAC_BYTES])

    def issue(self, agent_id: str, now: float | None = None) -> tuple[str, int]:
        """A token for ``agent_id`` and its expiry in Unix ms."""
        expires = int((time.time() if now is None else now) + self.ttl)
        body = f"{_PREFIX}.{_b64(agent_id.encode())}.{expires}"
        return f"{body}.{self._mac(body)}", expires * 1000

    def verify(self, token: str, now: float | None = None) -> str:
        """The agent a valid, unexpired token was issued to; TokenError otherwise."""
        if len(token) > MAX_TOKEN or not token.isascii():
            raise TokenError("not a far-end token")
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != _PREFIX or not parts[2].isdigit():
            raise TokenError("not a far-end token")
        body = ".".join(parts[:3])
        if not hmac.compare_digest(self._mac(body), parts[3]):
            raise TokenError("the token's signature does not verify")
        if int(parts[2]) < (time.time() if now is None else now):
            raise TokenError("the token has expired")
        try:
            agent_id = _unb64(parts[1]).decode("ascii")
        except (binascii.Error, ValueError):
            raise TokenError("not a far-end token") from None
        if not agent_id or len(agent_id) > MAX_AGENT_ID:
            raise TokenError("not a far-end token")
        return agent_id
